//! The native methods of `com.ggcore.runtime.Host` (sdk-java): the Java
//! SDK's calls into the core, through the instance's host table. They may be
//! called from any Java thread (a pinned function publishing from its own);
//! each runs under `catch_unwind`, and a refusal by the core is thrown as
//! `com.ggcore.runtime.HostException(code, message)`.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use ggcore_plugin_abi::abi_stable::std_types::RResult;
use ggcore_plugin_abi::{HostBox, HostError, HostErrorCode, InvocationType, InvokeArgs, LogLevel, PublishArgs, ShadowOp};
use jni::objects::{JByteArray, JClass, JObject, JString, JValue};
use jni::sys::{jboolean, jint, jobject, jobjectArray};
use jni::{JNIEnv, NativeMethod};

const HOST_CLASS: &str = "com/ggcore/runtime/Host";
const HOST_EXCEPTION: &str = "com/ggcore/runtime/HostException";

static HOST: OnceLock<HostBox> = OnceLock::new();

/// Keeps the instance's host table for the natives (one instance per worker).
pub fn install(host: HostBox) {
    let _ = HOST.set(host);
}

/// Registers the natives on `com.ggcore.runtime.Host`.
pub fn register(env: &mut JNIEnv<'_>) -> Result<(), String> {
    let methods = [
        NativeMethod { name: "publish".into(), sig: "(Ljava/lang/String;[BLjava/lang/String;)V".into(), fn_ptr: publish as *mut c_void },
        NativeMethod {
            name: "invoke".into(),
            sig: "(Ljava/lang/String;Ljava/lang/String;ZLjava/lang/String;[B)[Ljava/lang/Object;".into(),
            fn_ptr: invoke as *mut c_void,
        },
        NativeMethod { name: "shadow".into(), sig: "(Ljava/lang/String;Ljava/lang/String;[B)[B".into(), fn_ptr: shadow as *mut c_void },
        NativeMethod { name: "secret".into(), sig: "([B)[B".into(), fn_ptr: secret as *mut c_void },
        NativeMethod { name: "log".into(), sig: "(ILjava/lang/String;)V".into(), fn_ptr: log as *mut c_void },
    ];
    let class = env.find_class(HOST_CLASS).map_err(|e| {
        let _ = env.exception_clear();
        format!("ggcore's Java SDK has no {HOST_CLASS} ({e}): the SDK jar is not the one this plugin was built with")
    })?;
    env.register_native_methods(&class, &methods).map_err(|e| {
        let _ = env.exception_clear();
        format!("cannot register the Java SDK's native methods: {e}")
    })
}

/// What a native returns when it failed: a Java exception is pending.
enum Failure {
    /// The core refused: throw `HostException(code, message)`.
    Host(HostError),
    /// A JNI call failed (its exception, if any, is already pending).
    Jni(jni::errors::Error),
}

impl From<jni::errors::Error> for Failure {
    fn from(e: jni::errors::Error) -> Self {
        Failure::Jni(e)
    }
}

impl From<HostError> for Failure {
    fn from(e: HostError) -> Self {
        Failure::Host(e)
    }
}

fn host() -> Result<&'static HostBox, Failure> {
    HOST.get().ok_or_else(|| Failure::Host(HostError::new(HostErrorCode::Internal, "no function instance in this process")))
}

fn ok<T>(r: RResult<T, HostError>) -> Result<T, Failure> {
    r.into_result().map_err(Failure::Host)
}

/// Runs a native's body; on failure throws and returns `default`.
fn run<'l, T>(env: &mut JNIEnv<'l>, default: T, body: impl FnOnce(&mut JNIEnv<'l>) -> Result<T, Failure>) -> T {
    let outcome = catch_unwind(AssertUnwindSafe(|| body(env)));
    let failure = match outcome {
        Ok(Ok(v)) => return v,
        Ok(Err(f)) => f,
        Err(_) => Failure::Host(HostError::new(HostErrorCode::Internal, "the Java plugin panicked")),
    };
    if env.exception_check().unwrap_or(false) {
        return default;
    }
    let e = match failure {
        Failure::Host(e) => e,
        // Nothing pending: the caller must not take null for an answer.
        Failure::Jni(e) => HostError::new(HostErrorCode::Internal, format!("the Java plugin's JNI call failed: {e}")),
    };
    let thrown = (|| -> Result<(), jni::errors::Error> {
        let code = env.new_string(e.code.as_str())?;
        let message = env.new_string(e.message.as_str())?;
        let ex =
            env.new_object(HOST_EXCEPTION, "(Ljava/lang/String;Ljava/lang/String;)V", &[JValue::Object(&code), JValue::Object(&message)])?;
        env.throw(jni::objects::JThrowable::from(ex))
    })();
    if thrown.is_err() && !env.exception_check().unwrap_or(false) {
        let _ = env.throw_new("java/lang/RuntimeException", format!("{}: {}", e.code.as_str(), e.message.as_str()));
    }
    default
}

fn string(env: &mut JNIEnv<'_>, s: &JString<'_>) -> Result<String, Failure> {
    if s.is_null() {
        return Ok(String::new());
    }
    Ok(env.get_string(s)?.into())
}

fn bytes(env: &mut JNIEnv<'_>, b: &JByteArray<'_>) -> Result<Vec<u8>, Failure> {
    if b.is_null() {
        return Ok(Vec::new());
    }
    Ok(env.convert_byte_array(b)?)
}

extern "system" fn publish<'l>(mut env: JNIEnv<'l>, _class: JClass<'l>, topic: JString<'l>, payload: JByteArray<'l>, policy: JString<'l>) {
    run(&mut env, (), |env| {
        let topic = string(env, &topic)?;
        let payload = bytes(env, &payload)?;
        let policy = string(env, &policy)?;
        let args = PublishArgs {
            topic: topic.as_str().into(),
            payload: payload.as_slice().into(),
            queue_full_policy: policy.as_str().into(),
            claimed_source: "".into(),
        };
        ok(host()?.publish(args))
    })
}

extern "system" fn invoke<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    arn: JString<'l>,
    qualifier: JString<'l>,
    event: jboolean,
    client_context: JString<'l>,
    payload: JByteArray<'l>,
) -> jobjectArray {
    run(&mut env, std::ptr::null_mut(), |env| {
        let arn = string(env, &arn)?;
        let qualifier = string(env, &qualifier)?;
        let client_context = string(env, &client_context)?;
        let payload = bytes(env, &payload)?;
        let args = InvokeArgs {
            function_arn: arn.as_str().into(),
            qualifier: qualifier.as_str().into(),
            invocation_type: if event != 0 { InvocationType::Event } else { InvocationType::RequestResponse },
            client_context: client_context.as_str().into(),
            payload: payload.as_slice().into(),
        };
        let reply = ok(host()?.invoke(args))?;
        let out = env.new_object_array(3, "java/lang/Object", JObject::null())?;
        let id = env.new_string(reply.invocation_id.as_str())?;
        let function_error = env.new_string(reply.function_error.as_str())?;
        let result = env.byte_array_from_slice(reply.payload.as_slice())?;
        env.set_object_array_element(&out, 0, id)?;
        env.set_object_array_element(&out, 1, function_error)?;
        env.set_object_array_element(&out, 2, result)?;
        Ok(out.into_raw())
    })
}

extern "system" fn shadow<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    op: JString<'l>,
    thing: JString<'l>,
    payload: JByteArray<'l>,
) -> jobject {
    run(&mut env, std::ptr::null_mut(), |env| {
        let op = match string(env, &op)?.as_str() {
            "get" => ShadowOp::Get,
            "update" => ShadowOp::Update,
            "delete" => ShadowOp::Delete,
            other => return Err(Failure::Host(HostError::new(HostErrorCode::BadRequest, format!("unknown shadow operation {other:?}")))),
        };
        let thing = string(env, &thing)?;
        let payload = bytes(env, &payload)?;
        let answer = ok(host()?.shadow(op, thing.as_str().into(), payload.as_slice().into()))?;
        Ok(env.byte_array_from_slice(answer.as_slice())?.into_raw())
    })
}

extern "system" fn secret<'l>(mut env: JNIEnv<'l>, _class: JClass<'l>, request: JByteArray<'l>) -> jobject {
    run(&mut env, std::ptr::null_mut(), |env| {
        let request = bytes(env, &request)?;
        let answer = ok(host()?.get_secret(request.as_slice().into()))?;
        Ok(env.byte_array_from_slice(answer.as_slice())?.into_raw())
    })
}

extern "system" fn log<'l>(mut env: JNIEnv<'l>, _class: JClass<'l>, level: jint, line: JString<'l>) {
    run(&mut env, (), |env| {
        let line = string(env, &line)?;
        host()?.log(LogLevel::from_u8(level.clamp(0, 4) as u8), line.as_str().into());
        Ok(())
    })
}

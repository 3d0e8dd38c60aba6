//! One Java function instance: the JVM in this worker process and the calls
//! into `com.ggcore.runtime.Runtime` (sdk-java).

use std::path::{Path, PathBuf};

use ggcore_plugin_abi::{ErrorKind, FunctionError, FunctionInstance, FunctionSpec, HostBox, InvocationContext, InvocationType};
use jni::objects::{JByteArray, JObject, JValue};
use jni::{InitArgsBuilder, JNIEnv, JNIVersion, JavaVM};
use serde_json::json;

use crate::discover::Jvm;
use crate::natives;

const RUNTIME_CLASS: &str = "com/ggcore/runtime/Runtime";
const OUTCOME_SIG: &str = "([BLjava/lang/String;Ljava/lang/String;JZ)Lcom/ggcore/runtime/Outcome;";

/// The heap a function of `memory_mb` gets: three quarters of its memory,
/// and at least 48 MB left for the JVM's own (metaspace, code, threads, about
/// 40 MB for a small function); never under 16 MB.
pub fn heap_mb(memory_mb: u64) -> u64 {
    (memory_mb * 3 / 4).min(memory_mb.saturating_sub(48)).max(16)
}

/// The function's class path: the SDK jar, the code directory (class
/// trees), then every `.jar` in it and in its `lib/`, in name order.
pub fn class_path(sdk_jar: &Path, code_dir: &Path) -> String {
    let mut parts = vec![sdk_jar.to_path_buf(), code_dir.to_path_buf()];
    for dir in [code_dir.to_path_buf(), code_dir.join("lib")] {
        let mut jars: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "jar")).collect())
            .unwrap_or_default();
        jars.sort();
        parts.extend(jars);
    }
    parts.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":")
}

/// A started Java instance.
pub struct JavaInstance {
    vm: JavaVM,
}

impl JavaInstance {
    /// Creates the JVM, registers the SDK's natives and loads the handler.
    pub fn start(jvm: &Jvm, sdk_jar: &Path, spec: &FunctionSpec, host: HostBox) -> Result<Self, String> {
        let code_dir = Path::new(spec.code_dir.as_str());
        let memory_mb = spec.memory_limit_kb / 1024;
        let args = InitArgsBuilder::new()
            .version(JNIVersion::V8)
            .option(format!("-Djava.class.path={}", class_path(sdk_jar, code_dir)))
            .option(format!("-Xmx{}m", heap_mb(memory_mb)))
            // Lean and quick to start: one GC thread, the client compiler,
            // no shared-memory statistics file, and the worker's signals
            // left to the worker.
            .option("-XX:+UseSerialGC")
            .option("-XX:TieredStopAtLevel=1")
            .option("-XX:ReservedCodeCacheSize=32m")
            .option("-XX:-UsePerfData")
            .option("-Xshare:auto")
            .option("-Xrs")
            // A crash report goes to /tmp, not into the code directory (the
            // working directory), and no core dump of the heap.
            .option("-XX:ErrorFile=/tmp/ggcore-java-hs_err_%p.log")
            .option("-XX:-CreateCoredumpOnCrash")
            .option("-Dfile.encoding=UTF-8")
            .option(format!("-Duser.dir={}", code_dir.display()))
            .ignore_unrecognized(false)
            .build()
            .map_err(|e| format!("bad JVM options: {e}"))?;
        let vm = JavaVM::with_libjvm(args, || Ok(jvm.libjvm.clone()))
            .map_err(|e| format!("cannot start the JVM {}: {e}", jvm.libjvm.display()))?;
        natives::install(host);
        let spec_json = json!({
            "functionArn": spec.function_arn.as_str(),
            "handler": spec.handler.as_str(),
            "codeDir": spec.code_dir.as_str(),
            "encoding": if spec.encoding == ggcore_plugin_abi::Encoding::Binary { "binary" } else { "json" },
            "memoryLimitMb": memory_mb,
            "timeoutMs": spec.timeout_ms,
            "pinned": spec.pinned,
            "runtime": spec.runtime.as_str(),
        })
        .to_string();
        {
            let mut env = vm.attach_current_thread_permanently().map_err(|e| format!("cannot attach to the JVM: {e}"))?;
            natives::register(&mut env)?;
            env.with_local_frame(16, |env| -> Result<(), jni::errors::Error> {
                let s = env.new_string(&spec_json)?;
                let called = env.call_static_method(RUNTIME_CLASS, "start", "(Ljava/lang/String;)V", &[JValue::Object(&s)]);
                match called {
                    Ok(_) => Ok(()),
                    Err(jni::errors::Error::JavaException) => Err(jni::errors::Error::JavaException),
                    Err(e) => Err(e),
                }
            })
            .map_err(|e| match e {
                jni::errors::Error::JavaException => format!("the function did not start: {}", pending_exception(&mut env)),
                other => format!("cannot call {RUNTIME_CLASS}.start: {other}"),
            })?;
        }
        Ok(JavaInstance { vm })
    }
}

/// Takes the pending Java exception: prints its stack trace to stderr (the
/// function's log) and returns its `toString()`.
/// Runs in a local frame of its own (this thread stays attached, so its
/// local references would never be freed) and leaves no exception pending.
fn pending_exception(env: &mut JNIEnv<'_>) -> String {
    let described = env.with_local_frame(8, |env| -> Result<String, jni::errors::Error> {
        let throwable = env.exception_occurred()?;
        let _ = env.exception_describe();
        let _ = env.exception_clear();
        if throwable.is_null() {
            return Ok("an exception".into());
        }
        let text = env.call_method(&throwable, "toString", "()Ljava/lang/String;", &[])?.l()?;
        Ok(env.get_string(&text.into())?.into())
    });
    let _ = env.exception_clear();
    described.unwrap_or_else(|_| "an exception".into())
}

impl FunctionInstance for JavaInstance {
    fn invoke(&mut self, event: Vec<u8>, context: &InvocationContext) -> Result<Vec<u8>, FunctionError> {
        let mut env = self
            .vm
            .attach_current_thread_permanently()
            .map_err(|e| FunctionError::new(ErrorKind::Unhandled, &format!("cannot attach to the JVM: {e}")))?;
        let outcome = env.with_local_frame(16, |env| -> Result<(bool, Vec<u8>), jni::errors::Error> {
            let event = env.byte_array_from_slice(&event)?;
            let id = env.new_string(context.invocation_id.as_str())?;
            let client_context = env.new_string(context.client_context.as_str())?;
            let is_event = context.invocation_type == InvocationType::Event;
            let r = env
                .call_static_method(
                    RUNTIME_CLASS,
                    "invoke",
                    OUTCOME_SIG,
                    &[
                        JValue::Object(&event),
                        JValue::Object(&id),
                        JValue::Object(&client_context),
                        JValue::Long(context.deadline_unix_ms as i64),
                        JValue::Bool(is_event.into()),
                    ],
                )?
                .l()?;
            let failed = env.get_field(&r, "failed", "Z")?.z()?;
            let payload: JObject<'_> = env.get_field(&r, "payload", "[B")?.l()?;
            let bytes = if payload.is_null() { Vec::new() } else { env.convert_byte_array(JByteArray::from(payload))? };
            Ok((failed, bytes))
        });
        match outcome {
            Ok((false, bytes)) => Ok(bytes),
            Ok((true, document)) => Err(FunctionError { kind: ErrorKind::Unhandled, payload: document.into() }),
            Err(jni::errors::Error::JavaException) => {
                let what = pending_exception(&mut env);
                Err(FunctionError::new(ErrorKind::Unhandled, &format!("the Java runtime failed: {what}")))
            }
            Err(e) => Err(FunctionError::new(ErrorKind::Unhandled, &format!("cannot call the Java runtime: {e}"))),
        }
    }

    /// Lets the runtime flush `System.out`/`System.err` (a line without its
    /// newline is still in the stream) before the worker ends.
    fn shutdown(&mut self) {
        if let Ok(mut env) = self.vm.attach_current_thread_permanently() {
            let _ = env.with_local_frame(4, |env| env.call_static_method(RUNTIME_CLASS, "stop", "()V", &[]).map(drop));
            let _ = env.exception_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_and_class_path() {
        assert_eq!((heap_mb(128), heap_mb(320), heap_mb(1024), heap_mb(16)), (80, 240, 768, 16));
        let dir = std::env::temp_dir().join(format!("ggcore-java-cp-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        for f in ["b.jar", "a.jar", "notes.txt", "lib/z.jar"] {
            std::fs::write(dir.join(f), b"").unwrap();
        }
        let cp = class_path(Path::new("/sdk/x.jar"), &dir);
        let d = dir.display();
        assert_eq!(cp, format!("/sdk/x.jar:{d}:{d}/a.jar:{d}/b.jar:{d}/lib/z.jar"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The `java` runtime plugin (`libggcore_plugin_java.so`).
//!
//! It serves `java8`, `java11`, `java17` and later on the installed JDK
//! ([`discover`]): the instance's worker creates a JVM in its own process
//! through the JNI invocation API, with ggcore's Java SDK and runtime
//! (`sdk-java`, one jar) and the function's code directory (its `.jar` files
//! and class trees) on the class path, registers the SDK's native methods
//! ([`natives`]) and calls `com.ggcore.runtime.Runtime` to load the handler
//! and run each invocation ([`instance`]). A JVM cannot survive `fork`, so
//! there is no zygote: each instance's worker is started for it.

pub mod discover;
mod instance;
mod natives;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ggcore_plugin_abi::abi_stable::std_types::RVec;
use ggcore_plugin_abi::{export_plugin, FunctionInstance, FunctionSpec, HostBox, PluginInfo, ProbeReport, Runtime};

/// The SDK directory this plugin's instances need (under the core's SDK root).
const SDK_DIR: &str = "sdk-java";
/// ggcore's Java SDK and runtime, in that directory.
pub const SDK_JAR: &str = "aws-greengrass-core-sdk-java.jar";

/// The JVM and the SDK jar, found by `prepare` while the worker still has
/// the core's environment (`JAVA_HOME`, `PATH`): `start` runs after the
/// worker took the function's user and environment, in which neither is the
/// host's.
struct Prepared {
    jvm: discover::Jvm,
    jar: PathBuf,
}

static PREPARED: OnceLock<Result<Prepared, String>> = OnceLock::new();

fn prepared(runtime: &str, sdk_dirs: &[String]) -> Result<&'static Prepared, String> {
    PREPARED
        .get_or_init(|| {
            let jvm = discover::find()?;
            if !discover::serves(runtime, jvm.major) {
                return Err(format!(
                    "runtime '{runtime}' is not served by the installed Java {} ({}): Java 8 up to the JDK's own release",
                    if jvm.version.is_empty() { "?" } else { &jvm.version },
                    jvm.home.display()
                ));
            }
            Ok(Prepared { jvm, jar: sdk_jar(sdk_dirs)? })
        })
        .as_ref()
        .map_err(Clone::clone)
}

struct JavaRuntime;

impl Runtime for JavaRuntime {
    fn info(&self) -> PluginInfo {
        PluginInfo { name: "java".into(), version: env!("CARGO_PKG_VERSION").into(), runtimes: RVec::from(vec!["java*".into()]) }
    }

    fn sdk_dirs(&self) -> Vec<String> {
        vec![SDK_DIR.to_string()]
    }

    fn refused(&self) -> Vec<(String, String)> {
        vec![("java".into(), "give the Java version: java8, java11, java17 (served by the installed JDK)".into())]
    }

    fn probe(&self) -> ProbeReport {
        match discover::find() {
            Ok(jvm) => ProbeReport {
                available: true,
                detail: format!("Java {} ({})", if jvm.version.is_empty() { "?" } else { &jvm.version }, jvm.home.display()).into(),
                native_runtime: jvm.native_runtime().into(),
            },
            Err(reason) => ProbeReport { available: false, detail: reason.into(), native_runtime: "".into() },
        }
    }

    /// Finds the JVM and the SDK jar with the core's environment; a JVM
    /// cannot be forked, so there is no zygote (`false`).
    fn prepare(&self, runtime: &str, sdk_dirs: &[String]) -> Result<bool, String> {
        prepared(runtime, sdk_dirs).map(|_| false)
    }

    fn start(&self, spec: FunctionSpec, host: HostBox) -> Result<Box<dyn FunctionInstance>, String> {
        let sdk_dirs: Vec<String> = spec.sdk_dirs.iter().map(|d| d.to_string()).collect();
        let p = prepared(spec.runtime.as_str(), &sdk_dirs)?;
        let instance = instance::JavaInstance::start(&p.jvm, &p.jar, &spec, host)?;
        Ok(Box::new(instance))
    }
}

/// The SDK jar in one of the instance's SDK directories.
fn sdk_jar(sdk_dirs: &[String]) -> Result<PathBuf, String> {
    sdk_dirs.iter().map(|d| Path::new(d).join(SDK_JAR)).find(|j| j.is_file()).ok_or_else(|| {
        format!("ggcore's Java SDK ({SDK_DIR}/{SDK_JAR}) is not in any of the SDK directories {sdk_dirs:?}: build it with `cargo build` (needs a JDK) or install ggcore")
    })
}

export_plugin!(JavaRuntime);

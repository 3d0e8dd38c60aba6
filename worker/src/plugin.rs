//! Loading a runtime plugin and describing why one cannot be used.

use std::path::Path;

use abi_stable::library::LibraryError;
use abi_stable::std_types::RResult;
use ggcore_plugin_abi::{PluginModRef, ABI_VERSION};

/// Loads the plugin at `path`, checking its ABI layout and version.
pub fn load(path: &Path) -> Result<PluginModRef, String> {
    load_versioned(path).map(|(module, _)| module)
}

/// [`load`], also giving the ABI version the plugin was built against.
fn load_versioned(path: &Path) -> Result<(PluginModRef, String), String> {
    let header = abi_stable::library::lib_header_from_path(path).map_err(|e| describe(path, &e))?;
    // Plugins built against an older 1.x load too (abi_stable alone refuses them).
    let module = ggcore_plugin_abi::init_plugin(header).map_err(|e| describe(path, &e))?;
    Ok((module, header.version_strings().to_string()))
}

/// A one-line reason for a load failure, naming both versions on a mismatch.
pub fn describe(path: &Path, e: &LibraryError) -> String {
    match e {
        LibraryError::OpenError { err, .. } => format!("cannot load {}: {err}", path.display()),
        LibraryError::GetSymbolError { .. } => "not a ggcore runtime plugin (it exports no ggcore plugin root module)".to_string(),
        LibraryError::IncompatibleVersionNumber { expected_version, actual_version, .. } => format!(
            "built against ggcore-plugin-abi {actual_version}, this core provides {ABI_VERSION}; rebuild it against ggcore-plugin-abi {}.x",
            expected_version.major
        ),
        LibraryError::ParseVersionError(v) => format!("unreadable ABI version: {v}"),
        LibraryError::RootModule { err, .. } => format!("the plugin's root module failed to load: {err}"),
        LibraryError::AbiInstability(err) => {
            let text = err.to_string();
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("layout differs");
            format!("ABI layout differs from this core's ggcore-plugin-abi {ABI_VERSION}: {}", first.trim())
        }
        LibraryError::InvalidAbiHeader(h) => format!("built with an incompatible abi_stable ({h:?})"),
        LibraryError::InvalidCAbi { .. } => "built for a different C ABI".to_string(),
        LibraryError::Many(v) => v.iter().map(|e| describe(path, e)).collect::<Vec<_>>().join("; "),
    }
}

/// `ggcore-worker probe FILE`: prints one JSON object describing the plugin.
pub fn probe(path: &Path) -> serde_json::Value {
    let file = path.display().to_string();
    let (module, abi_version) = match load_versioned(path) {
        Ok(m) => m,
        Err(reason) => {
            return serde_json::json!({ "file": file, "available": false, "detail": reason, "name": "", "version": "", "abiVersion": "", "runtimes": [] })
        }
    };
    let info = match (module.info())() {
        RResult::ROk(i) => i,
        RResult::RErr(e) => {
            return serde_json::json!({ "file": file, "available": false, "detail": e.message.to_string(), "name": "", "version": "", "abiVersion": abi_version, "runtimes": [] })
        }
    };
    let report = (module.probe())();
    serde_json::json!({
        "file": file,
        "name": info.name.as_str(),
        "version": info.version.as_str(),
        "abiVersion": abi_version,
        "runtimes": info.runtimes.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        // Declared from ABI 1.1 on; null for older plugins.
        "sdkDirs": module.sdk_dirs().map(|f| f().iter().map(|d| d.to_string()).collect::<Vec<_>>()),
        // Declared from ABI 1.2 on: [[name, value], ...]; null for older plugins.
        "environment": module.environment().map(|f| ggcore_plugin_abi::from_pairs(&f())),
        "refused": module.refused().map(|f| ggcore_plugin_abi::from_pairs(&f())),
        "available": report.available,
        "detail": report.detail.as_str(),
        "nativeRuntime": report.native_runtime.as_str(),
    })
}

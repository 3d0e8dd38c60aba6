//! The plugin path: where runtime plugins (`libggcore_plugin_*.so`) are looked for.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// File names probed as runtime plugins.
pub fn is_plugin_file_name(name: &str) -> bool {
    name.starts_with("libggcore_plugin_") && name.ends_with(".so")
}

/// One plugin file found on the path, and what probing it said.
#[derive(Debug, Clone, Serialize)]
pub struct PluginEntry {
    pub name: String,
    pub version: String,
    pub abi_version: String,
    pub runtimes: Vec<String>,
    pub file: PathBuf,
    /// `ok` or `unavailable: <reason>`.
    pub status: String,
}

/// Every plugin file on the path, in path order then name order.
pub fn find_plugin_files(path: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in path {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| is_plugin_file_name(&e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in files {
            // The same file reached through two path entries is listed once.
            let canon = std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone());
            if !out
                .iter()
                .any(|o: &PathBuf| std::fs::canonicalize(o).unwrap_or_else(|_| o.clone()) == canon)
            {
                out.push(f);
            }
        }
    }
    out
}

/// Describes the searched path for humans.
pub fn describe_path(path: &[PathBuf]) -> String {
    path.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// Whether `dir` is on the path.
pub fn on_path(path: &[PathBuf], dir: &Path) -> bool {
    path.iter().any(|p| p == dir)
}

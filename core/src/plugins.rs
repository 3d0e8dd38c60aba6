//! The plugin path and the registry of runtime plugins found on it.
//!
//! Every `libggcore_plugin_*.so` on the path is probed in its own
//! `ggcore-worker probe` process, so that a corrupt library, a plugin built for
//! another ABI, or one that crashes while loading is listed with the reason and
//! never takes the core (or `ggcore plugins list`) down.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Environment variable naming the worker executable (else: beside `ggcore`).
pub const WORKER_ENV: &str = "GGCORE_WORKER";
/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// File names probed as runtime plugins.
pub fn is_plugin_file_name(name: &str) -> bool {
    name.starts_with("libggcore_plugin_") && name.ends_with(".so")
}

/// One plugin file found on the path, and what probing it said.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PluginEntry {
    pub name: String,
    pub version: String,
    pub abi_version: String,
    pub runtimes: Vec<String>,
    pub file: PathBuf,
    pub available: bool,
    /// Why it is unavailable, or what it found.
    pub detail: String,
    /// The runtime actually served (`python3.11`).
    #[serde(default)]
    pub native_runtime: String,
    /// The SDK directories the plugin declares (ABI 1.1); `None` for a plugin
    /// built against 1.0: its instances get the SDK of their language.
    #[serde(default)]
    pub sdk_dirs: Option<Vec<String>>,
    /// The environment its instances get (ABI 1.2); `None` for an older
    /// plugin: its instances get what older cores set for their language.
    #[serde(default)]
    pub environment: Option<Vec<(String, String)>>,
    /// Runtime patterns it recognises and refuses, with the reason (ABI 1.2).
    #[serde(default)]
    pub refused: Option<Vec<(String, String)>>,
}

impl PluginEntry {
    /// `ok` or `unavailable: <reason>`.
    pub fn status(&self) -> String {
        if self.available {
            "ok".to_string()
        } else {
            format!("unavailable: {}", self.detail)
        }
    }

    pub fn serves(&self, runtime: &str) -> bool {
        self.runtimes.iter().any(|p| ggcore_plugin_abi::runtime_matches(p, runtime))
    }
}

/// Every plugin file on the path, in path order then name order.
pub fn find_plugin_files(path: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    for dir in path {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut files: Vec<PathBuf> =
            entries.flatten().filter(|e| is_plugin_file_name(&e.file_name().to_string_lossy())).map(|e| e.path()).collect();
        files.sort();
        for f in files {
            // The same file reached through two path entries is listed once.
            let canon = std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone());
            if !seen.contains(&canon) {
                seen.push(canon);
                out.push(f);
            }
        }
    }
    out
}

/// Describes the searched path for humans.
pub fn describe_path(path: &[PathBuf]) -> String {
    path.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":")
}

/// The worker executable: `$GGCORE_WORKER`, else `ggcore-worker` beside this executable.
pub fn worker_exe() -> PathBuf {
    if let Some(p) = std::env::var_os(WORKER_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.join("ggcore-worker"))).unwrap_or_else(|| PathBuf::from("ggcore-worker"))
}

fn unavailable(file: &Path, detail: String) -> PluginEntry {
    PluginEntry {
        name: String::new(),
        version: String::new(),
        abi_version: String::new(),
        runtimes: Vec::new(),
        file: file.to_path_buf(),
        available: false,
        detail,
        native_runtime: String::new(),
        sdk_dirs: None,
        environment: None,
        refused: None,
    }
}

/// The tail of a stream kept by the probe: its JSON answer is the last line
/// of stdout, a crash's reason the last line of stderr.
const PROBE_STDOUT_KEPT: usize = 64 * 1024;
const PROBE_STDERR_KEPT: usize = 8 * 1024;

/// Reads `stream` to its end on a thread, keeping only its last `max` bytes
/// (a plugin may print without bound while it loads). The thread ends when
/// every holder of the pipe's write end has closed it.
fn drain_tail<R: Read + Send + 'static>(mut stream: R, max: usize) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    // Should the thread not start, the receiver gets nothing: an empty tail.
    let _ = std::thread::Builder::new().name("ggcore-probe-out".into()).spawn(move || {
        let mut kept: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    kept.extend_from_slice(&chunk[..n]);
                    if kept.len() > 2 * max {
                        kept.drain(..kept.len() - max);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if kept.len() > max {
            kept.drain(..kept.len() - max);
        }
        let _ = tx.send(kept);
    });
    rx
}

/// Probes one plugin file in a separate worker process. Its stdout and
/// stderr are drained while it runs (a full pipe would stall it), keeping a
/// bounded tail of each.
pub fn probe(file: &Path, worker: &Path) -> PluginEntry {
    let child = Command::new(worker)
        .arg("probe")
        .arg(file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return unavailable(file, format!("cannot run the worker {} to probe it: {e}", worker.display())),
    };
    let stdout = child.stdout.take().map(|s| drain_tail(s, PROBE_STDOUT_KEPT));
    let stderr = child.stderr.take().map(|s| drain_tail(s, PROBE_STDERR_KEPT));
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return unavailable(file, format!("probing did not finish within {} s", PROBE_TIMEOUT.as_secs()));
            }
            Err(e) => return unavailable(file, format!("probing failed: {e}")),
        }
    };
    // The worker has ended; its output ends with it (unless the plugin left a
    // process behind holding the pipes: then what was read by now is enough).
    let tail =
        |rx: Option<std::sync::mpsc::Receiver<Vec<u8>>>| rx.and_then(|rx| rx.recv_timeout(Duration::from_secs(2)).ok()).unwrap_or_default();
    let (stdout, stderr) = (tail(stdout), tail(stderr));
    let text = String::from_utf8_lossy(&stdout);
    let answer = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    match serde_json::from_str::<PluginEntry>(answer) {
        Ok(mut e) => {
            e.file = file.to_path_buf();
            e
        }
        Err(_) => {
            let how = match status.code() {
                Some(c) => format!("exit code {c}"),
                None => {
                    use std::os::unix::process::ExitStatusExt;
                    format!("signal {}", status.signal().unwrap_or(0))
                }
            };
            let stderr = String::from_utf8_lossy(&stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
            unavailable(
                file,
                format!("the plugin crashed while loading ({how}){}", if last.is_empty() { String::new() } else { format!(": {last}") }),
            )
        }
    }
}

/// The plugins found on a path, probed.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    pub path: Vec<PathBuf>,
    pub plugins: Vec<PluginEntry>,
}

impl Registry {
    /// Finds and probes every plugin (in parallel).
    pub fn scan(path: &[PathBuf]) -> Self {
        let worker = worker_exe();
        let files = find_plugin_files(path);
        let plugins = std::thread::scope(|s| {
            let handles: Vec<_> = files.iter().map(|f| s.spawn(|| probe(f, &worker))).collect();
            handles
                .into_iter()
                .zip(&files)
                .map(|(h, f)| h.join().unwrap_or_else(|_| unavailable(f, "probe thread failed".into())))
                .collect()
        });
        Self { path: path.to_vec(), plugins }
    }

    /// The first available plugin serving `runtime`, or why none can.
    pub fn plugin_for(&self, runtime: &str) -> Result<&PluginEntry, String> {
        let refusal = self.plugins.iter().filter(|p| p.available).find_map(|p| {
            p.refused.iter().flatten().find(|(pattern, _)| ggcore_plugin_abi::runtime_matches(pattern, runtime)).map(|(_, why)| why)
        });
        if let Some(why) = refusal {
            return Err(format!("{runtime} {why}"));
        }
        if let Some(p) = self.plugins.iter().find(|p| p.available && p.serves(runtime)) {
            return Ok(p);
        }
        if let Some(p) = self.plugins.iter().find(|p| p.serves(runtime)) {
            return Err(format!("runtime '{runtime}' is served by plugin {} ({}), which is {}", p.name, p.file.display(), p.status()));
        }
        Err(format!("no runtime plugin serves runtime '{runtime}' (plugin path searched: {})", describe_path(&self.path)))
    }

    /// The check a group compiles with: `Ok(Some(warning))` when the runtime
    /// runs on a different version than requested.
    pub fn check(&self, runtime: &str) -> Result<Option<String>, String> {
        let p = self.plugin_for(runtime)?;
        if !p.native_runtime.is_empty() && p.native_runtime != runtime {
            return Ok(Some(format!("runtime '{runtime}' runs on the installed {}", p.native_runtime)));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, runtimes: &[&str], available: bool) -> PluginEntry {
        PluginEntry {
            name: name.into(),
            version: "1".into(),
            abi_version: "1.0.0".into(),
            runtimes: runtimes.iter().map(|s| s.to_string()).collect(),
            file: PathBuf::from(format!("/p/libggcore_plugin_{name}.so")),
            available,
            detail: if available { String::new() } else { "libpython not found".into() },
            native_runtime: if name == "python" { "python3.11".into() } else { String::new() },
            sdk_dirs: None,
            environment: None,
            refused: None,
        }
    }

    #[test]
    fn runtime_lookup_explains_itself() {
        let mut python = entry("python", &["python3.*"], true);
        python.refused = Some(vec![("python2.*".into(), "cannot be embedded by ggcore".into())]);
        let r = Registry { path: vec![PathBuf::from("/p")], plugins: vec![python, entry("node", &["nodejs*"], false)] };
        assert_eq!(r.check("python3.11"), Ok(None));
        assert_eq!(r.check("python3.8"), Ok(Some("runtime 'python3.8' runs on the installed python3.11".into())));
        assert!(r.check("python2.7").unwrap_err().contains("cannot be embedded"));
        assert!(r.check("nodejs12.x").unwrap_err().contains("unavailable: libpython not found"));
        assert!(r.check("java11").unwrap_err().contains("no runtime plugin serves runtime 'java11'"));
    }

    #[test]
    fn drained_output_keeps_only_its_tail() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let tail = drain_tail(std::io::Cursor::new(data.clone()), 1000).recv().unwrap();
        assert_eq!(tail, data[data.len() - 1000..]);
        let short = drain_tail(std::io::Cursor::new(b"ab".to_vec()), 1000).recv().unwrap();
        assert_eq!(short, b"ab");
    }

    #[test]
    fn plugin_files_are_found_once() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("libggcore_plugin_a.so"), b"x").unwrap();
        std::fs::write(d.path().join("libother.so"), b"x").unwrap();
        let files = find_plugin_files(&[d.path().to_path_buf(), d.path().to_path_buf()]);
        assert_eq!(files.len(), 1);
    }
}

//! Finding Node.js on the machine: `$GGCORE_NODE`, else `node` on the PATH
//! of the process that asks (the core's, for probes and zygotes).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Environment variable naming the node executable to use.
pub const NODE_ENV: &str = "GGCORE_NODE";
/// The oldest Node.js major version served.
pub const MIN_MAJOR: u32 = 18;

/// A usable Node.js.
#[derive(Debug, Clone)]
pub struct Node {
    pub path: PathBuf,
    /// As `node --version` prints it, without the `v`: `20.20.2`.
    pub version: String,
    pub major: u32,
}

impl Node {
    /// The runtime name of the installed version, such as `nodejs20.x`.
    pub fn native_runtime(&self) -> String {
        format!("nodejs{}.x", self.major)
    }
}

/// Finds node and checks its version; the error says why none is usable.
pub fn find() -> Result<Node, String> {
    let path = locate()?;
    let out = Command::new(&path)
        .arg("--version")
        .env_clear()
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {} --version: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let version = text.strip_prefix('v').unwrap_or(&text).to_string();
    let major = parse_major(&version).ok_or_else(|| format!("{} --version printed {text:?}, not a Node.js version", path.display()))?;
    if major < MIN_MAJOR {
        return Err(format!(
            "Node.js {text} at {} is too old: Node.js {MIN_MAJOR} or later is needed (install a newer one or set {NODE_ENV})",
            path.display()
        ));
    }
    Ok(Node { path, version, major })
}

/// The major version of `20.20.2`.
pub fn parse_major(version: &str) -> Option<u32> {
    version.split('.').next()?.parse().ok()
}

fn locate() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(NODE_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if is_executable(&p) { Ok(p) } else { Err(format!("{NODE_ENV}={} is not an executable file", p.display())) };
    }
    let path = std::env::var("PATH").unwrap_or_default();
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join("node");
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(format!("node not found on PATH ({path}): install Node.js {MIN_MAJOR} or later, or set {NODE_ENV} to its executable"))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether a runtime name is one of the legacy ones (Node.js 14 and older),
/// whose functions were written for Node's old treatment of unhandled
/// promise rejections (a warning, not the end of the process).
pub fn legacy_runtime(runtime: &str) -> bool {
    let Some(rest) = runtime.strip_prefix("nodejs") else { return false };
    rest.split('.').next().and_then(|m| m.parse::<u32>().ok()).is_some_and(|m| m <= 14)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_runtime_names() {
        assert_eq!(parse_major("20.20.2"), Some(20));
        assert_eq!(parse_major("x"), None);
        for (r, legacy) in [
            ("nodejs6.10", true),
            ("nodejs8.10", true),
            ("nodejs12.x", true),
            ("nodejs14.x", true),
            ("nodejs18.x", false),
            ("nodejs20.x", false),
            ("python3.8", false),
        ] {
            assert_eq!(legacy_runtime(r), legacy, "{r}");
        }
        let n = Node { path: "/usr/bin/node".into(), version: "20.20.2".into(), major: 20 };
        assert_eq!(n.native_runtime(), "nodejs20.x");
    }
}

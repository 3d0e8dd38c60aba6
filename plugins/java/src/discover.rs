//! Finding the JVM: `$JAVA_HOME` when it is set (and only it: a JAVA_HOME
//! that points nowhere is an error, not a reason to take another JDK), else
//! the JDK of `java` on the PATH, else Debian's `/usr/lib/jvm/default-java`.

use std::path::{Path, PathBuf};

/// An installed JVM.
#[derive(Debug, Clone)]
pub struct Jvm {
    pub home: PathBuf,
    pub libjvm: PathBuf,
    /// `17.0.13`, from the JDK's `release` file (empty when it has none).
    pub version: String,
    /// The feature release: 8, 11, 17, 21, ...
    pub major: u32,
}

impl Jvm {
    /// The runtime name this JVM is: `java17`.
    pub fn native_runtime(&self) -> String {
        format!("java{}", self.major)
    }
}

/// The JVM this process would use.
pub fn find() -> Result<Jvm, String> {
    if let Some(home) = std::env::var_os("JAVA_HOME").filter(|h| !h.is_empty()) {
        let home = PathBuf::from(home);
        return at(&home)
            .ok_or_else(|| format!("JAVA_HOME={} holds no JVM (no lib/server/libjvm.so, nor a Java 8 layout)", home.display()));
    }
    let from_path = which("java").and_then(|java| std::fs::canonicalize(java).ok()).and_then(|java| {
        // HOME/bin/java (or HOME/jre/bin/java for a Java 8 JDK).
        let bin = java.parent()?.to_path_buf();
        let home = bin.parent()?.to_path_buf();
        at(&home).or_else(|| home.parent().and_then(at))
    });
    if let Some(jvm) = from_path {
        return Ok(jvm);
    }
    at(Path::new("/usr/lib/jvm/default-java")).ok_or_else(|| {
        "no JVM found: JAVA_HOME is not set, no `java` on PATH, no /usr/lib/jvm/default-java (install a JDK, e.g. default-jdk-headless)"
            .to_string()
    })
}

/// The JVM installed at `home`, if there is one.
/// Looks for libjvm.so where JDKs keep it: `lib/server` (9 and later),
/// `lib/ARCH/{server,client}` and `jre/lib/ARCH/{server,client}` (8; a
/// JAVA_HOME may also name the `jre` directory itself).
pub fn at(home: &Path) -> Option<Jvm> {
    let mut candidates = vec![home.join("lib/server/libjvm.so"), home.join("lib/client/libjvm.so")];
    for lib in [home.join("lib"), home.join("jre/lib")] {
        let mut arch_dirs: Vec<PathBuf> =
            std::fs::read_dir(&lib).map(|d| d.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect()).unwrap_or_default();
        arch_dirs.sort();
        for dir in arch_dirs {
            candidates.push(dir.join("server/libjvm.so"));
            candidates.push(dir.join("client/libjvm.so"));
        }
    }
    let libjvm = candidates.into_iter().find(|p| p.is_file())?;
    let release = std::fs::read_to_string(home.join("release")).or_else(|_| std::fs::read_to_string(home.join("../release")));
    let version = release.ok().and_then(|r| release_version(&r)).unwrap_or_default();
    // A JDK without a `release` file is an old one: Java 8's layout.
    let major = major_of(&version).unwrap_or(8);
    Some(Jvm { home: home.to_path_buf(), libjvm, version, major })
}

/// `JAVA_VERSION="17.0.13"` of a JDK's `release` file.
pub fn release_version(release: &str) -> Option<String> {
    release.lines().find_map(|l| l.strip_prefix("JAVA_VERSION=")).map(|v| v.trim().trim_matches('"').to_string())
}

/// `1.8.0_392` → 8, `17.0.13` → 17, `21` → 21.
pub fn major_of(version: &str) -> Option<u32> {
    let mut parts = version.split(['.', '_', '-', '+']);
    let first: u32 = parts.next()?.parse().ok()?;
    if first == 1 {
        parts.next()?.parse().ok()
    } else {
        Some(first)
    }
}

/// The runtime names a JVM of `major` serves: `java8` and later up to its own
/// release (a newer JVM runs older class files).
pub fn serves(runtime: &str, major: u32) -> bool {
    runtime.strip_prefix("java").and_then(|v| v.parse::<u32>().ok()).is_some_and(|v| v >= 8 && v <= major)
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').filter(|d| !d.is_empty()).map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(release_version("IMPLEMENTOR=\"x\"\nJAVA_VERSION=\"17.0.13\"\n").as_deref(), Some("17.0.13"));
        assert_eq!(major_of("1.8.0_392"), Some(8));
        assert_eq!(major_of("17.0.13"), Some(17));
        assert_eq!(major_of("21"), Some(21));
        assert_eq!(major_of(""), None);
        assert!(serves("java8", 17) && serves("java11", 17) && serves("java17", 17));
        assert!(!serves("java21", 17) && !serves("java", 17) && !serves("javascript", 17) && !serves("java7", 17));
    }

    #[test]
    fn a_home_without_a_jvm_is_none() {
        assert!(at(Path::new("/nonexistent")).is_none());
    }
}

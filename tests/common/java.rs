//! Java functions for the tests: the sources of `tests/fixtures/java/src`
//! compiled with the JDK's `javac` against the SDK jar that
//! `ggcore sdk path java` names, packed with `jar`, as a user builds them.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::native::{sdk_path, tempdir};
use super::process::{ggcore_command, tests_dir};

/// The runtime the tests ask for (a Greengrass name, served by the installed JDK).
pub const JAVA: &str = "java11";

/// The jar `ggcore sdk path java` prints.
pub fn sdk_jar() -> PathBuf {
    static JAR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    JAR.get_or_init(|| sdk_path(&mut ggcore_command(), "java")).clone()
}

/// The fixture functions compiled against `jar` and packed into one jar; its bytes.
pub fn build_against(jar: &Path) -> Vec<u8> {
    let dir = tempdir("java");
    let classes = dir.join("classes");
    std::fs::create_dir_all(&classes).unwrap();
    let src = tests_dir().join("fixtures/java/src");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(src.join("e2e"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "java"))
        .collect();
    sources.sort();
    let out = Command::new("javac")
        .args(["--release", "11", "-encoding", "UTF-8", "-Werror", "-cp"])
        .arg(jar)
        .arg("-d")
        .arg(&classes)
        .args(&sources)
        .output()
        .expect("run javac (a JDK is needed to build the tests' Java functions)");
    assert!(out.status.success(), "javac:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let packed = dir.join("functions.jar");
    let out = Command::new("jar").arg("cf").arg(&packed).arg("-C").arg(&classes).arg(".").output().expect("run jar");
    assert!(out.status.success(), "jar: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&packed).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

/// The fixture functions built against `ggcore sdk path java` (once).
pub fn functions_jar() -> Vec<u8> {
    static JAR: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    JAR.get_or_init(|| build_against(&sdk_jar())).clone()
}

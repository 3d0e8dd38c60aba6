//! Lambda executables for the tests: the C programs of `tests/fixtures/native`
//! compiled with `cc` against the C Core SDK that `ggcore sdk path c` names,
//! as a user builds them.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::{ggcore_command, tests_dir};

/// The prefix `ggcore sdk path c` prints (include/ and lib/).
pub fn sdk_c() -> PathBuf {
    static PREFIX: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PREFIX.get_or_init(|| sdk_path(&mut ggcore_command(), "c")).clone()
}

/// What `CMD sdk path LANGUAGE` prints on its last line (the command a
/// `ggcore` with its environment).
pub fn sdk_path(cmd: &mut Command, language: &str) -> PathBuf {
    let out = cmd.args(["sdk", "path", language]).output().expect("run ggcore sdk path");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ggcore sdk path {language}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(stdout.lines().last().expect("a path").trim())
}

/// The source of a fixture program.
pub fn fixture(name: &str) -> PathBuf {
    tests_dir().join("fixtures/native").join(name)
}

/// Compiles the fixture `SOURCE` (C) against the SDK at `prefix` with `extra`
/// arguments; the program's bytes.
pub fn compile_against(prefix: &Path, source: &str, extra: &[&str]) -> Vec<u8> {
    let dir = tempdir(source);
    let program = dir.join("program");
    let out = Command::new("cc")
        .args(["-std=c99", "-D_DEFAULT_SOURCE", "-Wall", "-Wextra", "-Werror", "-O1", "-pthread"])
        .arg("-I")
        .arg(prefix.join("include"))
        .arg("-o")
        .arg(&program)
        .arg(fixture(source))
        .arg("-L")
        .arg(prefix.join("lib"))
        .arg("-laws-greengrass-core-sdk-c")
        .args(extra)
        .output()
        .expect("run cc (gcc is needed to build the tests' C functions)");
    assert!(out.status.success(), "cc {source}:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&program).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

/// Compiles the fixture `SOURCE` against `ggcore sdk path c`.
pub fn compile(source: &str) -> Vec<u8> {
    compile_against(&sdk_c(), source, &[])
}

/// A fresh directory for one build.
pub fn tempdir(tag: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ggcore-cc-{}-{n}-{}", std::process::id(), tag.replace(['/', '.'], "_")));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

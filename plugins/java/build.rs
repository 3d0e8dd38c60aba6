//! Builds ggcore's Java SDK and runtime (`sdk-java/src`) into
//! `aws-greengrass-core-sdk-java.jar` with the JDK's own `javac` and `jar`
//! (no other build tool), and puts it where the build tree's SDK root is
//! (`TARGET/PROFILE/sdk-java/`, beside `ggcore`; docs/install.md). Without a
//! JDK the jar is not built: the plugin then says so when probed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The plugin's JDK discovery: its version parsing serves here too.
#[allow(dead_code)]
#[path = "src/discover.rs"]
mod discover;

/// The jar's name in the SDK root's `sdk-java/`.
const JAR: &str = "aws-greengrass-core-sdk-java.jar";

fn main() {
    let (Some(out), Some(manifest)) = (std::env::var_os("OUT_DIR"), std::env::var_os("CARGO_MANIFEST_DIR")) else {
        return;
    };
    let out = PathBuf::from(out);
    let src = Path::new(&manifest).join("../../sdk-java/src");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-env-changed=JAVA_HOME");
    println!("cargo:rerun-if-env-changed=PATH");
    println!("cargo:rerun-if-changed=src/discover.rs");
    // OUT_DIR is TARGET/PROFILE/build/ggcore-plugin-java-HASH/out; the jar
    // goes to TARGET/PROFILE/sdk-java. Made again when it is missing (a
    // missing path reruns this script), e.g. after a build without a JDK.
    let dest_dir = out.ancestors().nth(3).map(|p| p.join("sdk-java"));
    if let Some(d) = &dest_dir {
        println!("cargo:rerun-if-changed={}", d.join(JAR).display());
    }
    let mut sources = Vec::new();
    collect(&src, &mut sources);
    for s in &sources {
        println!("cargo:rerun-if-changed={}", s.display());
    }
    if sources.is_empty() {
        println!("cargo:warning=no Java sources in {}: the Java SDK jar is not built", src.display());
        return;
    }
    sources.sort();
    let tool = |name: &str| match std::env::var_os("JAVA_HOME") {
        Some(home) if Path::new(&home).join("bin").join(name).is_file() => Path::new(&home).join("bin").join(name),
        _ => PathBuf::from(name),
    };
    let classes = out.join("classes");
    let _ = std::fs::remove_dir_all(&classes);
    if let Err(e) = std::fs::create_dir_all(&classes) {
        println!("cargo:warning=cannot make {}: {e}", classes.display());
        return;
    }
    // `--release` needs javac 9 or later.
    match Command::new(tool("javac")).arg("-version").output() {
        Ok(o) if javac_major(&String::from_utf8_lossy(&o.stdout), &String::from_utf8_lossy(&o.stderr)).is_some_and(|m| m >= 9) => {}
        Ok(o) => {
            let v = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            println!("cargo:warning=the Java SDK jar needs javac 9 or later (found: {}): not built", v.trim());
            return;
        }
        Err(e) => {
            println!("cargo:warning=no javac ({e}): the Java SDK jar is not built (install a JDK, or set JAVA_HOME)");
            return;
        }
    }
    // Java 8 class files and APIs, so that functions built for Greengrass's
    // java8 runtime link against it.
    let javac = Command::new(tool("javac"))
        .args(["--release", "8", "-encoding", "UTF-8", "-nowarn", "-Xlint:-options", "-d"])
        .arg(&classes)
        .args(&sources)
        .output();
    match javac {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("javac failed on sdk-java:\n{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            println!("cargo:warning=no javac ({e}): the Java SDK jar is not built (install a JDK, or set JAVA_HOME)");
            return;
        }
    }
    let jar = out.join(JAR);
    let packed = Command::new(tool("jar")).arg("cf").arg(&jar).arg("-C").arg(&classes).arg(".").output();
    match packed {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("jar failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            println!("cargo:warning=no jar tool ({e}): the Java SDK jar is not built");
            return;
        }
    }
    if let Some(dir) = dest_dir {
        let dest = dir.join(JAR);
        let tmp = dir.join(format!(".{JAR}.{}", std::process::id()));
        let copied = std::fs::create_dir_all(&dir).and_then(|_| std::fs::copy(&jar, &tmp)).and_then(|_| std::fs::rename(&tmp, &dest));
        if let Err(e) = copied {
            println!("cargo:warning=cannot put the Java SDK jar in {}: {e}", dir.display());
        }
    }
}

/// The feature release of `javac -version`'s answer (`javac 17.0.15`,
/// `javac 1.8.0_392`).
fn javac_major(stdout: &str, stderr: &str) -> Option<u32> {
    let text = format!("{stdout} {stderr}");
    let version = text.split_whitespace().skip_while(|w| *w != "javac").nth(1)?;
    discover::major_of(version)
}

/// Every `.java` file under `dir`.
fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "java") {
            out.push(path);
        }
    }
}

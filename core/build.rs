//! Lays out the SDK root of a build tree: `cargo build` puts `ggcore` in
//! `TARGET/PROFILE/`, and an installed `ggcore` finds its SDKs beside its
//! executable (docs/install.md), so this writes the same names there as links:
//! `sdk-python`, `sdk-node` and `sdk-c/include` to this checkout's sources, and
//! `sdk-c/lib/libaws-greengrass-core-sdk-c.so` to the library the `sdk-c`
//! crate builds in the same directory. Nothing of the build machine is
//! compiled into the binary; a build tree simply looks like an installation.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let (Some(out), Some(manifest)) = (std::env::var_os("OUT_DIR"), std::env::var_os("CARGO_MANIFEST_DIR")) else {
        return;
    };
    // OUT_DIR is TARGET/PROFILE/build/ggcore-HASH/out.
    let Some(profile) = Path::new(&out).ancestors().nth(3).map(Path::to_path_buf) else {
        return;
    };
    let Some(repo) = Path::new(&manifest).parent().map(Path::to_path_buf) else {
        return;
    };
    let links: [(PathBuf, PathBuf); 4] = [
        (profile.join("sdk-python"), repo.join("sdk-python")),
        (profile.join("sdk-node"), repo.join("sdk-node")),
        (profile.join("sdk-c/include"), repo.join("sdk-c/include")),
        (profile.join("sdk-c/lib/libaws-greengrass-core-sdk-c.so"), PathBuf::from("../../libaws_greengrass_core_sdk_c.so")),
    ];
    for (link, target) in &links {
        if let Err(e) = relink(link, target) {
            println!("cargo:warning=cannot link {} to {}: {e}", link.display(), target.display());
        }
    }
}

/// Points `link` at `target`, replacing whatever link was there (another
/// checkout may have built into the same target directory).
fn relink(link: &Path, target: &Path) -> std::io::Result<()> {
    if let Some(dir) = link.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if std::fs::read_link(link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    match std::fs::symlink_metadata(link) {
        Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(link)?,
        Ok(_) => return Err(std::io::Error::other("a file that is not a link is in the way")),
        Err(_) => {}
    }
    std::os::unix::fs::symlink(target, link)
}

//! Compiles `gg_log` (C-variadic, so written in C) and gives the shared library
//! AWS's SONAME and symbol version nodes, so that executables linked against
//! AWS's `libaws-greengrass-core-sdk-c.so` load this one unchanged.

fn main() {
    println!("cargo:rerun-if-changed=src/log.c");
    println!("cargo:rerun-if-changed=version.map");
    cc::Build::new().file("src/log.c").warnings(true).extra_warnings(true).compile("ggcore_sdk_c_log");
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    // Only for the cdylib: a version script naming these nodes would make the
    // test executables' links fail. This needs rust-lld (rustc's default
    // linker on x86_64 Linux since 1.90): GNU ld refuses a second version
    // script beside rustc's anonymous one ("anonymous version tag cannot be
    // combined with other version tags").
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/version.map");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libaws-greengrass-core-sdk-c.so");
    // Elsewhere (aarch64, armv7: GNU ld is rustc's default there) ask the C
    // compiler driver for the system's lld (Debian: `apt install lld`).
    let target = std::env::var("TARGET").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu" {
        println!("cargo:rustc-cdylib-link-arg=-fuse-ld=lld");
    }
}

//! Fuzz entry points for the parsers of outside input that live in this crate
//! (see docs/fuzzing.md). Each function takes the fuzzer's bytes, runs the
//! parser as the core does, and checks invariants, panicking when one fails:
//! the cargo-fuzz targets in `fuzz/` call these functions and nothing else, and
//! the tests below replay the kept corpus and every regression input through
//! the very same functions under `cargo test`.
//!
//! Built only for tests and with the `fuzzing` feature; no part of the core
//! calls into it.

mod bundle;
mod config;
mod group;
mod host_calls;
mod json_path;
mod mqtt;
mod session;
mod topics;

pub use bundle::bundle_zip;
pub use config::config_parse;
pub use group::group_compile;
pub use host_calls::host_calls;
pub use mqtt::mqtt_packet;
pub use session::mqtt_session;
pub use topics::topic_match;

#[cfg(test)]
mod replay {
    use std::path::{Path, PathBuf};

    /// `fuzz/` of this checkout. Cargo gives the package directory at run time
    /// too; the compiled-in one may name another checkout sharing the target dir.
    fn fuzz_dir() -> PathBuf {
        let manifest = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        Path::new(&manifest).join("../fuzz")
    }

    /// Runs `entry` on every kept input of `target`; returns how many there were.
    fn replay(target: &str, entry: fn(&[u8])) -> usize {
        let mut n = 0;
        for kind in ["corpus", "regressions"] {
            let dir = fuzz_dir().join(kind).join(target);
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
            files.sort();
            for file in files {
                let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                if std::panic::catch_unwind(|| entry(&data)).is_err() {
                    panic!("fuzz target {target} fails on {}", file.display());
                }
                n += 1;
            }
        }
        n
    }

    /// One test per target, so that a failure names it.
    macro_rules! replay_tests {
        ($($target:ident),* $(,)?) => {$(
            #[test]
            fn $target() {
                let n = replay(stringify!($target), super::$target);
                assert!(n > 0, "no kept inputs for fuzz target {} under {}", stringify!($target), fuzz_dir().display());
            }
        )*};
    }

    replay_tests!(mqtt_packet, mqtt_session, topic_match, group_compile, config_parse, bundle_zip, host_calls);
}

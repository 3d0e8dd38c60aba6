//! Function code packages (`.zip`): the deploy-time check, then, for small
//! archives it accepts, the unpacking itself into a scratch directory.
//! Whatever the archive holds, nothing may land outside the destination, no
//! symbolic link may be made, and no file may be setuid or setgid.

use std::io::Cursor;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::bundle::{check_zip_reader, extract_zip_reader, is_enclosed, BundleError, MAX_ENTRIES, MAX_UNPACKED_BYTES};

/// Archives larger than this once unpacked are checked, not unpacked.
const MAX_UNPACK_IN_FUZZING: u64 = 1 << 20;

pub fn bundle_zip(data: &[u8]) {
    let checked = check_zip_reader(Cursor::new(data));
    let Ok(mut archive) = zip::ZipArchive::new(Cursor::new(data)) else {
        assert!(matches!(checked, Err(BundleError::Zip(_))), "an unreadable archive passed: {checked:?}");
        return;
    };
    if checked.is_err() {
        return;
    }
    assert!(archive.len() <= MAX_ENTRIES);
    let mut total = 0u64;
    for i in 0..archive.len() {
        let Ok(entry) = archive.by_index(i) else { panic!("entry {i} of a checked archive is unreadable") };
        let name = entry.enclosed_name().unwrap_or_else(|| panic!("a checked entry escapes: {:?}", entry.name()));
        assert!(is_enclosed(&name), "zip's enclosed name {name:?} is not enclosed by ggcore's rule");
        assert!(!entry.is_symlink());
        total += entry.size();
    }
    assert!(total <= MAX_UNPACKED_BYTES);
    if total <= MAX_UNPACK_IN_FUZZING && archive.len() <= 256 {
        let scratch = Scratch::new();
        let dest = scratch.0.join("code");
        match extract_zip_reader(Cursor::new(data), &dest) {
            Ok(()) => {}
            Err(BundleError::Escapes(n)) => panic!("entry {n} escaped at unpacking, after the check passed"),
            Err(BundleError::LinkEscapes(p)) => panic!("a link {} was unpacked", p.display()),
            // Corrupt data, two entries with clashing names: refused, fine.
            Err(_) => {}
        }
        let mut unpacked = 0u64;
        check_tree(&dest, &scratch.0, &mut unpacked);
        assert!(unpacked <= total, "{unpacked} bytes unpacked from an archive declaring {total}");
    }
}

/// Everything under `dir` lies under `dest`, and is a plain file or directory.
fn check_tree(dest: &Path, dir: &Path, bytes: &mut u64) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
        assert!(p.starts_with(dest), "{} was written outside the destination", p.display());
        assert!(!meta.file_type().is_symlink(), "{} is a symbolic link", p.display());
        if meta.is_dir() {
            check_tree(dest, &p, bytes);
        } else {
            assert!(meta.is_file(), "{} is not a plain file", p.display());
            let mode = meta.permissions().mode();
            assert_eq!(mode & 0o7000, 0, "{} has mode {mode:o}", p.display());
            *bytes += meta.len();
        }
    }
}

/// A fresh directory under the system's temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ggcore-fuzz-bundle-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot make the scratch directory {}: {e}", dir.display());
        }
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

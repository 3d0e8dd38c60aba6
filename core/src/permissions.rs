//! File modes under the root: what the core keeps to itself (state, logs,
//! sockets, keys) and the directories a function's user passes through to
//! reach its deployed code. The rules are in docs/functions.md ("Files and
//! permissions"); the reasons in docs/adr/0009-file-permissions.md.
//!
//! `ggcore run` sets the process umask to 077 ([`restrict_umask`]) so that
//! every file it makes without an explicit mode — RocksDB's among them — is
//! private to the core's user; the few directories others must pass through
//! get their modes set explicitly ([`Layout::secure`]).

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::layout::Layout;

/// State, logs, sockets, staged deployments: the core's user only.
pub const PRIVATE_DIR: u32 = 0o700;
/// Files the core keeps to itself.
pub const PRIVATE_FILE: u32 = 0o600;
/// `ggc/`, `ggc/deployment/`, `ggc/deployment/lambda/`: every user may pass
/// through (to its own function's code), nobody but the core may list them.
pub const PASSAGE_DIR: u32 = 0o711;
/// A root or write directory that the core itself makes.
pub const OPEN_DIR: u32 = 0o755;
/// The umask of `ggcore run`.
pub const CORE_UMASK: u32 = 0o077;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct PermissionError {
    pub path: PathBuf,
    pub source: io::Error,
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> PermissionError + '_ {
    move |source| PermissionError { path: path.to_path_buf(), source }
}

/// Makes every file this process creates from now on private to its user
/// unless a mode is set explicitly. Returns the umask it replaces.
pub fn restrict_umask() -> u32 {
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(CORE_UMASK as libc::mode_t));
    old.bits() as u32
}

/// Sets `path`'s permission bits to `mode` (symbolic links are not followed).
pub fn set_mode(path: &Path, mode: u32) -> Result<(), PermissionError> {
    let meta = fs::symlink_metadata(path).map_err(err(path))?;
    if meta.file_type().is_symlink() || meta.permissions().mode() & 0o7777 == mode {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(err(path))
}

/// Creates `path` and its missing parents; each directory made here gets
/// `mode` exactly (whatever the umask), existing ones are left as they are.
pub fn create_dirs(path: &Path, mode: u32) -> Result<(), PermissionError> {
    let mut missing = Vec::new();
    let mut p = path;
    while fs::symlink_metadata(p).is_err() {
        missing.push(p.to_path_buf());
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent,
            _ => break,
        }
    }
    for dir in missing.iter().rev() {
        match fs::DirBuilder::new().mode(mode).create(dir) {
            Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(err(dir))?,
            // Made meanwhile by someone else: theirs, left alone.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(PermissionError { path: dir.clone(), source: e }),
        }
    }
    Ok(())
}

/// Creates `dir` if missing, then gives it exactly `mode`.
pub fn ensure_dir(dir: &Path, mode: u32) -> Result<(), PermissionError> {
    create_dirs(dir, mode)?;
    set_mode(dir, mode)
}

/// Makes `dir` and everything under it private: directories [`PRIVATE_DIR`],
/// files [`PRIVATE_FILE`] (symbolic links are left alone, never followed).
/// Creates `dir` when missing.
pub fn make_private_tree(dir: &Path) -> Result<(), PermissionError> {
    ensure_dir(dir, PRIVATE_DIR)?;
    let entries = fs::read_dir(dir).map_err(err(dir))?;
    for entry in entries {
        let entry = entry.map_err(err(dir))?;
        let path = entry.path();
        let kind = match entry.file_type() {
            Ok(k) => k,
            // Removed meanwhile (a rotated log, a compacted table).
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(PermissionError { path, source: e }),
        };
        let done = if kind.is_dir() {
            make_private_tree(&path)
        } else if kind.is_symlink() {
            Ok(())
        } else {
            set_mode(&path, PRIVATE_FILE)
        };
        match done {
            Err(e) if e.source.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

impl Layout {
    /// The directories a function's user must pass through to reach the code
    /// under `lambda/`, which the core owns and keeps at [`PASSAGE_DIR`].
    /// Directories above them (the root and its parents, or the write
    /// directory and its parents) are the user's.
    pub fn passage_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.lambda_dir(), self.deployment_dir()];
        if self.write_root == self.root.join("ggc") {
            dirs.push(self.write_root.clone());
        }
        dirs
    }

    /// Gives the root's directories the modes the core relies on, making
    /// missing ones: state, logs and sockets private (files inside included,
    /// so a root written by an earlier version is tightened too); the way to
    /// deployed code passable. Run at every start, before anything is served.
    pub fn secure(&self) -> Result<(), PermissionError> {
        create_dirs(&self.root, OPEN_DIR)?;
        create_dirs(&self.write_root, OPEN_DIR)?;
        ensure_dir(&self.root.join("ggc"), PASSAGE_DIR)?;
        for dir in self.passage_dirs().iter().rev() {
            ensure_dir(dir, PASSAGE_DIR)?;
        }
        ensure_dir(&self.socket_dir(), PRIVATE_DIR)?;
        ensure_dir(&self.group_file().parent().map(Path::to_path_buf).unwrap_or_default(), PRIVATE_DIR)?;
        make_private_tree(&self.staged_dir())?;
        make_private_tree(&self.var_dir())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn create_dirs_sets_modes_on_what_it_makes_only() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().join("base");
        fs::create_dir(&base).unwrap();
        fs::set_permissions(&base, fs::Permissions::from_mode(0o750)).unwrap();
        create_dirs(&base.join("a/b/c"), 0o711).unwrap();
        assert_eq!(mode(&base), 0o750, "an existing directory keeps its mode");
        for d in ["a", "a/b", "a/b/c"] {
            assert_eq!(mode(&base.join(d)), 0o711, "{d}");
        }
        create_dirs(&base.join("a/b/c"), 0o700).unwrap();
        assert_eq!(mode(&base.join("a/b/c")), 0o711, "existing: unchanged");
    }

    #[test]
    fn private_tree_tightens_everything_under_it() {
        let t = tempfile::tempdir().unwrap();
        let var = t.path().join("var");
        fs::create_dir_all(var.join("state/db")).unwrap();
        fs::write(var.join("state/db/000001.log"), b"x").unwrap();
        fs::write(var.join("state/db/CURRENT"), b"x").unwrap();
        fs::set_permissions(var.join("state/db/CURRENT"), fs::Permissions::from_mode(0o666)).unwrap();
        fs::set_permissions(var.join("state"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", var.join("link")).unwrap();
        make_private_tree(&var).unwrap();
        for d in ["", "state", "state/db"] {
            assert_eq!(mode(&var.join(d)), PRIVATE_DIR, "{d}");
        }
        for f in ["state/db/000001.log", "state/db/CURRENT"] {
            assert_eq!(mode(&var.join(f)), PRIVATE_FILE, "{f}");
        }
        assert_eq!(mode(Path::new("/etc/hostname")) & 0o004, 0o004, "a link's target is never touched");
    }

    #[test]
    fn secure_root_modes() {
        let t = tempfile::tempdir().unwrap();
        let layout = Layout::new(t.path().join("root"), None);
        fs::create_dir_all(layout.store_dir()).unwrap();
        fs::write(layout.store_dir().join("MANIFEST-000001"), b"m").unwrap();
        fs::set_permissions(layout.store_dir().join("MANIFEST-000001"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::create_dir_all(layout.system_log_dir()).unwrap();
        fs::write(layout.system_log_dir().join("runtime.log"), b"l").unwrap();
        layout.secure().unwrap();
        assert_eq!(mode(&layout.root), OPEN_DIR, "made by the core");
        for d in [layout.root.join("ggc"), layout.deployment_dir(), layout.lambda_dir()] {
            assert_eq!(mode(&d), PASSAGE_DIR, "{}", d.display());
        }
        for d in [layout.var_dir(), layout.state_dir(), layout.store_dir(), layout.socket_dir(), layout.staged_dir()] {
            assert_eq!(mode(&d), PRIVATE_DIR, "{}", d.display());
        }
        assert_eq!(mode(&layout.store_dir().join("MANIFEST-000001")), PRIVATE_FILE);
        assert_eq!(mode(&layout.system_log_dir().join("runtime.log")), PRIVATE_FILE);
    }

    #[test]
    fn a_separate_write_directory_is_made_open_and_ggc_still_passable() {
        let t = tempfile::tempdir().unwrap();
        let layout = Layout::new(t.path().join("root"), Some(t.path().join("write/dir")));
        layout.secure().unwrap();
        assert_eq!(mode(&t.path().join("write")), OPEN_DIR);
        assert_eq!(mode(&layout.write_root), OPEN_DIR);
        assert_eq!(layout.passage_dirs(), vec![layout.lambda_dir(), layout.deployment_dir()]);
        assert_eq!(mode(&layout.lambda_dir()), PASSAGE_DIR);
        assert_eq!(mode(&layout.socket_dir()), PRIVATE_DIR);
    }
}

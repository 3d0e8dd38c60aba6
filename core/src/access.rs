//! Whether a function's user can reach what its instances need: the deployed
//! copy of its code (every directory above it included) and its runtime's SDK.
//!
//! The core makes the copy under `ggc/deployment/lambda/<name>` readable by
//! the function's user and keeps the directories above it up to the root
//! passable ([`prepare_code`], [`crate::permissions`]). It does not change
//! directories it does not own — the root and its parents, a write directory,
//! the SDK's location: when one of those stops the user, the deployment is
//! refused with the function, the user and that directory named
//! ([`check_group`]), instead of a function that restarts forever with
//! `ModuleNotFoundError` (docs/functions.md, "RunAs and access to code").
//!
//! The check reads permission bits as the kernel applies them to a process
//! with exactly the function's uid and gid (instances have no supplementary
//! groups). Access control lists are not read.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::group::{Function, Group, Problem, RunAs};
use crate::layout::Layout;

/// The user and group a function's instances run as, or `None` when they run
/// as the core's own user (the core is not root and cannot switch users).
pub fn effective_run_as(run_as: Option<RunAs>) -> Option<RunAs> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    run_as.or_else(crate::functions::default_run_as)
}

/// What a user needs of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Pass through it (`x`).
    Search,
    /// List and pass through it (`r` and `x`): a directory read as a whole.
    Read,
}

impl Need {
    fn bits(self) -> u32 {
        match self {
            Need::Search => 0o1,
            Need::Read => 0o5,
        }
    }
}

/// A directory that does not let a user through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub dir: PathBuf,
    pub mode: u32,
    pub owner: u32,
    pub group: u32,
    pub need: Need,
    /// The class of the mode that applies to the user: `u`, `g` or `o`.
    pub class: char,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, add) = match self.need {
            Need::Search => ("search (x)", "x"),
            Need::Read => ("read and search (r-x)", "rx"),
        };
        write!(
            f,
            "{} (mode {:04o}, owner {}, group {}) does not let that user {what}; for example `chmod {}+{add} {}`",
            self.dir.display(),
            self.mode,
            user_name(self.owner),
            group_name(self.group),
            self.class,
            self.dir.display()
        )
    }
}

fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

fn group_name(gid: u32) -> String {
    match nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)) {
        Ok(Some(g)) => g.name,
        _ => gid.to_string(),
    }
}

/// Describes a function's user: `nobody (uid 65534, gid 65534)`.
pub fn describe_user(id: RunAs) -> String {
    format!("{} (uid {}, gid {})", user_name(id.uid), id.uid, id.gid)
}

/// Whether a directory of `mode`, `owner`, `group` grants `need` to `id`, and
/// the class of its mode that decides (the kernel uses the first that
/// matches: owner, then group, then others).
pub fn grants(mode: u32, owner: u32, group: u32, id: RunAs, need: Need) -> (bool, char) {
    let (bits, class) = if id.uid == owner {
        (mode >> 6, 'u')
    } else if id.gid == group {
        (mode >> 3, 'g')
    } else {
        (mode, 'o')
    };
    (bits & need.bits() == need.bits(), class)
}

/// The first directory on the way to `path` (from `/` down, `path` included)
/// that stops `id`: every directory must let it search, and `path` itself
/// must grant `last`. Directories in `skip` are not looked at (the core sets
/// their modes itself), and neither is anything below the first one that does
/// not exist yet (the core makes it). Symbolic links are resolved first.
pub fn first_blocked(path: &Path, id: RunAs, last: Need, skip: &[PathBuf]) -> io::Result<Option<Blocked>> {
    if id.uid == 0 {
        return Ok(None);
    }
    // The deepest part of `path` that exists, with links resolved.
    let mut existing = path;
    let mut rest = Vec::new();
    let resolved = loop {
        match fs::canonicalize(existing) {
            Ok(p) => break p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_owned());
                    existing = parent;
                }
                _ => return Ok(None),
            },
            Err(e) => return Err(e),
        }
    };
    let skip: Vec<PathBuf> = skip.iter().map(|p| fs::canonicalize(p).unwrap_or_else(|_| p.clone())).collect();
    let dirs: Vec<&Path> = resolved.ancestors().collect();
    for (i, dir) in dirs.iter().rev().enumerate() {
        if skip.iter().any(|s| s == dir) {
            continue;
        }
        let meta = fs::metadata(dir)?;
        let mode = meta.permissions().mode() & 0o7777;
        let is_last = rest.is_empty() && i + 1 == dirs.len();
        let need = if is_last { last } else { Need::Search };
        let (ok, class) = grants(mode, meta.uid(), meta.gid(), id, need);
        if !ok {
            return Ok(Some(Blocked { dir: dir.to_path_buf(), mode, owner: meta.uid(), group: meta.gid(), need, class }));
        }
    }
    Ok(None)
}

/// Where `f`'s code is once deployed.
pub fn deployed_code_dir(layout: &Layout, f: &Function) -> PathBuf {
    layout.lambda_dir().join(f.arn.name())
}

/// Checks that each function's user can reach its deployed code and the SDK
/// directories `sdk_dirs` gives for it; one problem per function that cannot.
pub fn check_group(layout: &Layout, group: &Group, sdk_dirs: &dyn Fn(&Function) -> Vec<PathBuf>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let passages = layout.passage_dirs();
    for f in &group.functions {
        let Some(id) = effective_run_as(f.run_as) else { continue };
        let user = format!("{}{}", describe_user(id), if f.run_as.is_none() { ", the default RunAs" } else { "" });
        let path = format!("FunctionDefinition.Functions[Id={}].RunAs", f.id);
        let code = deployed_code_dir(layout, f);
        // The copy itself and the directories the core keeps passable are
        // made right at deployment; everything above them must already be.
        let mut skip = passages.clone();
        skip.push(code.clone());
        let reach = first_blocked(&code, id, Need::Read, &skip);
        let mut found = vec![("its deployed code", code, reach)];
        for dir in sdk_dirs(f).into_iter().filter(|d| d.is_dir()) {
            let r = first_blocked(&dir, id, Need::Read, &[]);
            found.push(("the runtime's SDK", dir, r));
        }
        for (what, target, result) in found {
            let message = match result {
                Ok(None) => continue,
                Ok(Some(blocked)) => format!(
                    "function '{}' runs as {user}, which cannot reach {what} at {}: {blocked}, deploy to a root that user can reach, or give the function another RunAs",
                    f.arn.name(),
                    target.display()
                ),
                Err(e) => format!("function '{}': cannot check {what} at {}: {e}", f.arn.name(), target.display()),
            };
            problems.push(Problem { path: path.clone(), message });
        }
    }
    problems
}

/// Gives a deployed copy of code the modes and group that let `run_as` (the
/// function's user; `None`: the core's own) read it and nobody else but the
/// core: directories 0750, files 0640 (0750 when any execute bit was set),
/// owned by the core's user and `run_as`'s group. Symbolic links are left as
/// they are (they point inside the code).
pub fn prepare_code(dir: &Path, run_as: Option<RunAs>) -> io::Result<()> {
    let group = run_as.filter(|_| nix::unistd::geteuid().is_root()).map(|r| r.gid);
    walk_code(dir, group)
}

fn walk_code(path: &Path, group: Option<u32>) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    if let Some(g) = group {
        if meta.gid() != g {
            std::os::unix::fs::lchown(path, None, Some(g))?;
        }
    }
    let mode = if meta.is_dir() || meta.permissions().mode() & 0o111 != 0 { 0o750 } else { 0o640 };
    if meta.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            walk_code(&entry?.path(), group)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOBODY: RunAs = RunAs { uid: 65534, gid: 65534 };

    #[test]
    fn the_owner_class_decides_first() {
        // The owner is refused by its own bits even when others may.
        assert_eq!(grants(0o077, 65534, 0, NOBODY, Need::Search), (false, 'u'));
        assert_eq!(grants(0o710, 0, 65534, NOBODY, Need::Search), (true, 'g'));
        assert_eq!(grants(0o750, 0, 65534, NOBODY, Need::Read), (true, 'g'));
        assert_eq!(grants(0o711, 0, 0, NOBODY, Need::Search), (true, 'o'));
        assert_eq!(grants(0o711, 0, 0, NOBODY, Need::Read), (false, 'o'));
        assert_eq!(grants(0o700, 0, 0, NOBODY, Need::Search), (false, 'o'));
    }

    fn chmod(p: &Path, mode: u32) {
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn the_first_directory_that_stops_the_user_is_named() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().join("base");
        fs::create_dir_all(base.join("a/b")).unwrap();
        chmod(t.path(), 0o755);
        chmod(&base, 0o755);
        chmod(&base.join("a"), 0o700);
        chmod(&base.join("a/b"), 0o700);
        let b = first_blocked(&base.join("a/b/c/d"), NOBODY, Need::Read, &[]).unwrap().expect("blocked");
        assert_eq!((b.dir.as_path(), b.mode, b.need, b.class), (base.join("a").as_path(), 0o700, Need::Search, 'o'));
        let text = b.to_string();
        assert!(text.contains("(mode 0700, owner ") && text.contains(&format!("`chmod o+x {}`", base.join("a").display())), "{text}");
        // Skipped directories are the core's to set.
        let skip = [base.join("a"), base.join("a/b")];
        assert_eq!(first_blocked(&base.join("a/b/c/d"), NOBODY, Need::Read, &skip).unwrap(), None);
        // The last directory must be readable, not only passable.
        chmod(&base.join("a"), 0o711);
        chmod(&base.join("a/b"), 0o711);
        let b = first_blocked(&base.join("a/b"), NOBODY, Need::Read, &[]).unwrap().expect("blocked");
        assert_eq!((&b.dir, b.need), (&base.join("a/b"), Need::Read));
        assert!(b.to_string().contains("chmod o+rx"), "{b}");
        // Root passes everywhere.
        assert_eq!(first_blocked(&base.join("a/b"), RunAs { uid: 0, gid: 0 }, Need::Read, &[]).unwrap(), None);
    }

    #[test]
    fn links_are_followed_to_the_real_directories() {
        let t = tempfile::tempdir().unwrap();
        chmod(t.path(), 0o755);
        let private = t.path().join("private");
        fs::create_dir_all(private.join("code")).unwrap();
        chmod(&private, 0o700);
        std::os::unix::fs::symlink(private.join("code"), t.path().join("link")).unwrap();
        let b = first_blocked(&t.path().join("link"), NOBODY, Need::Read, &[]).unwrap().expect("blocked");
        assert_eq!(b.dir, fs::canonicalize(&private).unwrap());
    }

    #[test]
    fn deployed_code_gets_group_read_only() {
        let t = tempfile::tempdir().unwrap();
        let code = t.path().join("code");
        fs::create_dir_all(code.join("pkg")).unwrap();
        fs::write(code.join("main.py"), b"x = 1").unwrap();
        fs::write(code.join("run.sh"), b"#!/bin/sh").unwrap();
        chmod(&code.join("run.sh"), 0o700);
        chmod(&code.join("main.py"), 0o600);
        fs::write(code.join("pkg/secret.txt"), b"s").unwrap();
        chmod(&code.join("pkg/secret.txt"), 0o666);
        std::os::unix::fs::symlink("main.py", code.join("link.py")).unwrap();
        prepare_code(&code, Some(NOBODY)).unwrap();
        let mode = |p: &str| fs::symlink_metadata(code.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!((mode(""), mode("pkg"), mode("main.py"), mode("run.sh"), mode("pkg/secret.txt")), (0o750, 0o750, 0o640, 0o750, 0o640));
        if nix::unistd::geteuid().is_root() {
            for p in ["", "pkg", "main.py", "pkg/secret.txt"] {
                assert_eq!(fs::metadata(code.join(p)).unwrap().gid(), 65534, "{p}");
            }
        }
    }
}

//! Function code packages: a directory or a `.zip`, checked so that nothing
//! lands outside its destination, and copied into the deployment directory.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Largest total unpacked size of one function package (guards against zip bombs).
pub const MAX_UNPACKED_BYTES: u64 = 1024 * 1024 * 1024;
/// Most entries in one function package.
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("not a readable zip archive: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("zip entry '{0}' escapes its directory")]
    Escapes(String),
    #[error("unpacks to more than {MAX_UNPACKED_BYTES} bytes")]
    TooLarge,
    #[error("has more than {MAX_ENTRIES} entries")]
    TooManyEntries,
    #[error("symbolic link {0} points outside the function's code")]
    LinkEscapes(PathBuf),
    #[error("{0}: {1}")]
    Io(PathBuf, io::Error),
}

fn io_err(p: &Path) -> impl FnOnce(io::Error) -> BundleError + '_ {
    move |e| BundleError::Io(p.to_path_buf(), e)
}

fn entry_name<R: io::Read>(entry: &zip::read::ZipFile<'_, R>) -> String {
    entry.name().map(|n| n.to_string()).unwrap_or_else(|_| "<name not UTF-8>".to_string())
}

/// Checks every entry of a zip archive without unpacking it.
pub fn check_zip(path: &Path) -> Result<(), BundleError> {
    let file = fs::File::open(path).map_err(io_err(path))?;
    check_zip_reader(file)
}

/// [`check_zip`] for an archive read from `reader`.
pub fn check_zip_reader<R: io::Read + io::Seek>(reader: R) -> Result<(), BundleError> {
    check_archive(&mut zip::ZipArchive::new(reader)?)
}

fn check_archive<R: io::Read + io::Seek>(archive: &mut zip::ZipArchive<R>) -> Result<(), BundleError> {
    if archive.len() > MAX_ENTRIES {
        return Err(BundleError::TooManyEntries);
    }
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive.by_index(i)?;
        if entry.enclosed_name().is_none() || entry.is_symlink() {
            return Err(BundleError::Escapes(entry_name(&entry)));
        }
        total = total.saturating_add(entry.size());
        if total > MAX_UNPACKED_BYTES {
            return Err(BundleError::TooLarge);
        }
    }
    Ok(())
}

/// Unpacks a checked zip archive into `dest` (which must not exist yet).
pub fn extract_zip(path: &Path, dest: &Path) -> Result<(), BundleError> {
    let file = fs::File::open(path).map_err(io_err(path))?;
    extract_zip_reader(file, dest)
}

/// [`extract_zip`] for an archive read from `reader`.
pub fn extract_zip_reader<R: io::Read + io::Seek>(reader: R, dest: &Path) -> Result<(), BundleError> {
    let mut archive = zip::ZipArchive::new(reader)?;
    check_archive(&mut archive)?;
    fs::create_dir_all(dest).map_err(io_err(dest))?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        let Some(rel) = entry.enclosed_name() else {
            return Err(BundleError::Escapes(entry_name(&entry)));
        };
        let out = dest.join(&rel);
        if entry.is_dir() {
            fs::create_dir_all(&out).map_err(io_err(&out))?;
            continue;
        }
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let mut w = fs::File::create(&out).map_err(io_err(&out))?;
        io::copy(&mut entry, &mut w).map_err(io_err(&out))?;
        #[cfg(unix)]
        if let Some(mode) = entry.unix_mode() {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&out, fs::Permissions::from_mode(mode & 0o755)).map_err(io_err(&out))?;
        }
    }
    Ok(())
}

/// Copies a code directory into `dest`. Symbolic links are kept only when they
/// point inside the code directory.
pub fn copy_dir(src: &Path, dest: &Path) -> Result<(), BundleError> {
    let root = fs::canonicalize(src).map_err(io_err(src))?;
    copy_tree(&root, &root, dest)
}

fn copy_tree(root: &Path, dir: &Path, dest: &Path) -> Result<(), BundleError> {
    fs::create_dir_all(dest).map_err(io_err(dest))?;
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let kind = entry.file_type().map_err(io_err(&from))?;
        if kind.is_symlink() {
            let resolved = fs::canonicalize(&from).map_err(io_err(&from))?;
            if !resolved.starts_with(root) {
                return Err(BundleError::LinkEscapes(from));
            }
            let target = fs::read_link(&from).map_err(io_err(&from))?;
            std::os::unix::fs::symlink(&target, &to).map_err(io_err(&to))?;
        } else if kind.is_dir() {
            copy_tree(root, &from, &to)?;
        } else {
            fs::copy(&from, &to).map_err(io_err(&from))?;
        }
    }
    Ok(())
}

/// A hash of a directory tree (relative paths, kinds, modes and contents), to
/// tell whether a function's code changed between deployments. Empty when the
/// directory cannot be read.
pub fn tree_hash(dir: &Path) -> String {
    let mut entries = Vec::new();
    if collect(dir, dir, &mut entries).is_err() {
        return String::new();
    }
    entries.sort();
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for (rel, kind, mode) in &entries {
        ctx.update(rel.as_bytes());
        ctx.update(&[0, *kind]);
        ctx.update(&mode.to_le_bytes());
        let p = dir.join(rel);
        match kind {
            b'f' => match fs::read(&p) {
                Ok(data) => ctx.update(&data),
                Err(_) => return String::new(),
            },
            b'l' => ctx.update(fs::read_link(&p).map(|t| t.display().to_string()).unwrap_or_default().as_bytes()),
            _ => {}
        }
    }
    ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, u8, u32)>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for e in fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        let rel = p.strip_prefix(root).map(|r| r.display().to_string()).unwrap_or_default();
        let meta = fs::symlink_metadata(&p)?;
        let mode = meta.permissions().mode();
        if meta.file_type().is_symlink() {
            out.push((rel, b'l', 0));
        } else if meta.is_dir() {
            out.push((rel, b'd', mode));
            collect(root, &p, out)?;
        } else {
            out.push((rel, b'f', mode));
        }
    }
    Ok(())
}

/// Whether a relative path stays inside its base (no `..`, not absolute).
pub fn is_enclosed(rel: &Path) -> bool {
    rel.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn make_zip(path: &Path, names: &[&str]) {
        let f = fs::File::create(path).unwrap();
        let mut w = zip::ZipWriter::new(f);
        for n in names {
            w.start_file(*n, zip::write::SimpleFileOptions::default()).unwrap();
            w.write_all(b"x = 1\n").unwrap();
        }
        w.finish().unwrap();
    }

    #[test]
    fn zip_entries_must_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.zip");
        make_zip(&good, &["a.py", "pkg/b.py"]);
        check_zip(&good).unwrap();
        extract_zip(&good, &dir.path().join("out")).unwrap();
        assert!(dir.path().join("out/pkg/b.py").is_file());
        let bad = dir.path().join("bad.zip");
        make_zip(&bad, &["ok.py", "../../evil.py"]);
        assert!(matches!(check_zip(&bad), Err(BundleError::Escapes(n)) if n == "../../evil.py"));
        let junk = dir.path().join("junk.zip");
        fs::write(&junk, b"not a zip").unwrap();
        assert!(matches!(check_zip(&junk), Err(BundleError::Zip(_))));
    }

    #[test]
    fn tree_hash_sees_changes() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a.py"), b"x = 1").unwrap();
        let h1 = tree_hash(d.path());
        assert_eq!(h1, tree_hash(d.path()));
        fs::write(d.path().join("a.py"), b"x = 2").unwrap();
        assert_ne!(h1, tree_hash(d.path()));
        assert_eq!(tree_hash(&d.path().join("missing")), "");
    }

    #[test]
    fn enclosed_paths() {
        assert!(is_enclosed(Path::new("a/b")));
        assert!(!is_enclosed(Path::new("../a")));
        assert!(!is_enclosed(Path::new("/a")));
    }
}

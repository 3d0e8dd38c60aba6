//! The state store: RocksDB under `ggc/var/state/db`, behind [`StateStore`] so
//! that the deployment records, the spooler queue and the shadows each get a
//! column family, and tests can use the in-memory twin.
//!
//! One process owns a root: [`RootLock`] is taken (flock) before RocksDB opens,
//! so a second `ggcore run` fails with a clear message instead of touching state.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Column families. Key layouts live with their owners; the schema version in `Meta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cf {
    Meta,
    Deployments,
    Spool,
    Shadows,
}

impl Cf {
    pub const ALL: [Cf; 4] = [Cf::Meta, Cf::Deployments, Cf::Spool, Cf::Shadows];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Meta => "meta",
            Cf::Deployments => "deployments",
            Cf::Spool => "spool",
            Cf::Shadows => "shadows",
        }
    }
}

/// Version of the key layout; bumped when a layout changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;
#[cfg(feature = "rocksdb")]
const SCHEMA_KEY: &[u8] = b"schema_version";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Db(String),
    #[error("state store at {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("another ggcore is running on this root (pid {pid}); lock held on {path}")]
    Locked { path: PathBuf, pid: String },
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("state store schema version {found} is newer than this ggcore understands ({SCHEMA_VERSION})")]
    Schema { found: u32 },
}

/// Key-value pairs in key order, as a prefix scan returns them.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

type MemoryMap = BTreeMap<(Cf, Vec<u8>), Vec<u8>>;

/// One write of a batch.
#[derive(Debug, Clone)]
pub enum WriteOp {
    Put(Cf, Vec<u8>, Vec<u8>),
    Delete(Cf, Vec<u8>),
}

/// Key-value storage with column families.
pub trait StateStore: Send + Sync {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every entry of `cf` whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<Entries, StoreError>;
    /// Applies all writes atomically; `sync` waits for the WAL to reach the disk.
    fn write(&self, ops: Vec<WriteOp>, sync: bool) -> Result<(), StoreError>;

    fn put(&self, cf: Cf, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.write(vec![WriteOp::Put(cf, key.to_vec(), value.to_vec())], true)
    }

    fn delete(&self, cf: Cf, key: &[u8]) -> Result<(), StoreError> {
        self.write(vec![WriteOp::Delete(cf, key.to_vec())], true)
    }

    /// Makes every write made so far durable (fsync of the write-ahead log).
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Makes the store usable again after a failed write, where it needs it.
    fn recover(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// RocksDB-backed store.
#[cfg(feature = "rocksdb")]
pub struct RocksStore {
    /// `None` between a failed reopen and the next (see [`StateStore::recover`]).
    db: std::sync::RwLock<Option<rocksdb::DB>>,
    dir: PathBuf,
}

#[cfg(feature = "rocksdb")]
fn db_err(e: rocksdb::Error) -> StoreError {
    StoreError::Db(e.into_string())
}

#[cfg(feature = "rocksdb")]
fn cf_of(db: &rocksdb::DB, cf: Cf) -> Result<&rocksdb::ColumnFamily, StoreError> {
    db.cf_handle(cf.name()).ok_or_else(|| StoreError::Db(format!("column family {} is missing", cf.name())))
}

#[cfg(feature = "rocksdb")]
impl RocksStore {
    /// Opens (creating where missing) the store at `dir`. Take the [`RootLock`] first.
    ///
    /// The directory and its files are the core's user's only (0700, 0600):
    /// they hold every deployment record, queued message and shadow, which no
    /// function may read. RocksDB makes its files with the process umask, which
    /// `ggcore run` sets to 077; files left by a laxer process are tightened here.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let private = |e: crate::permissions::PermissionError| StoreError::Io(e.path, e.source);
        crate::permissions::ensure_dir(dir, crate::permissions::PRIVATE_DIR).map_err(private)?;
        let store = Self { db: std::sync::RwLock::new(Some(Self::open_db(dir)?)), dir: dir.to_path_buf() };
        store.check_schema()?;
        crate::permissions::make_private_tree(dir).map_err(private)?;
        Ok(store)
    }

    fn open_db(dir: &Path) -> Result<rocksdb::DB, StoreError> {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::None);
        opts.set_max_background_jobs(2);
        opts.set_keep_log_file_num(3);
        opts.set_max_log_file_size(1 << 20);
        opts.set_max_total_wal_size(64 << 20);
        let cfs = Cf::ALL.iter().map(|cf| {
            let mut o = rocksdb::Options::default();
            o.set_compression_type(rocksdb::DBCompressionType::None);
            // The queue's messages are mostly deleted before a flush when the
            // memtable is large enough to hold a backlog: they then never
            // reach a table file (memory is used only as the queue fills).
            o.set_write_buffer_size(if *cf == Cf::Spool { 32 << 20 } else { 4 << 20 });
            rocksdb::ColumnFamilyDescriptor::new(cf.name(), o)
        });
        rocksdb::DB::open_cf_descriptors(&opts, dir, cfs)
            .map_err(|e| StoreError::Open { path: dir.to_path_buf(), message: e.into_string() })
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        match self.get(Cf::Meta, SCHEMA_KEY)? {
            Some(v) => {
                let found = v.as_slice().try_into().map(u32::from_be_bytes).unwrap_or(u32::MAX);
                if found > SCHEMA_VERSION {
                    return Err(StoreError::Schema { found });
                }
                Ok(())
            }
            None => self.put(Cf::Meta, SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes()),
        }
    }

    fn with_db<T>(&self, f: impl FnOnce(&rocksdb::DB) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let g = self.db.read().unwrap_or_else(|p| p.into_inner());
        match g.as_ref() {
            Some(db) => f(db),
            None => Err(StoreError::Db(format!("the state store at {} is closed after an error; reopening", self.dir.display()))),
        }
    }
}

#[cfg(feature = "rocksdb")]
impl StateStore for RocksStore {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_db(|db| db.get_cf(cf_of(db, cf)?, key).map_err(db_err))
    }

    fn scan_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<Entries, StoreError> {
        self.with_db(|db| {
            let mut out = Vec::new();
            let it = db.iterator_cf(cf_of(db, cf)?, rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward));
            for item in it {
                let (k, v) = item.map_err(db_err)?;
                if !k.starts_with(prefix) {
                    break;
                }
                out.push((k.to_vec(), v.to_vec()));
            }
            Ok(out)
        })
    }

    fn write(&self, ops: Vec<WriteOp>, sync: bool) -> Result<(), StoreError> {
        self.with_db(|db| {
            let mut batch = rocksdb::WriteBatch::default();
            for op in ops {
                match op {
                    WriteOp::Put(cf, k, v) => batch.put_cf(cf_of(db, cf)?, k, v),
                    WriteOp::Delete(cf, k) => batch.delete_cf(cf_of(db, cf)?, k),
                }
            }
            let mut wo = rocksdb::WriteOptions::default();
            wo.set_sync(sync);
            db.write_opt(batch, &wo).map_err(db_err)
        })
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.with_db(|db| db.flush_wal(true).map_err(db_err))
    }

    /// After a failed write (a full or read-only disk) RocksDB refuses every
    /// later write until it is reopened: close it and open it again (its
    /// write-ahead log brings back every write that succeeded).
    fn recover(&self) -> Result<(), StoreError> {
        let mut g = self.db.write().unwrap_or_else(|p| p.into_inner());
        *g = None;
        *g = Some(Self::open_db(&self.dir)?);
        Ok(())
    }
}

/// A build without the `rocksdb` feature (the fuzz targets) has no persistent
/// store: opening one is refused.
#[cfg(not(feature = "rocksdb"))]
pub enum RocksStore {}

#[cfg(not(feature = "rocksdb"))]
impl RocksStore {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Err(StoreError::Open { path: dir.to_path_buf(), message: "this ggcore was built without RocksDB (the rocksdb feature)".into() })
    }
}

#[cfg(not(feature = "rocksdb"))]
impl StateStore for RocksStore {
    fn get(&self, _: Cf, _: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match *self {}
    }

    fn scan_prefix(&self, _: Cf, _: &[u8]) -> Result<Entries, StoreError> {
        match *self {}
    }

    fn write(&self, _: Vec<WriteOp>, _: bool) -> Result<(), StoreError> {
        match *self {}
    }
}

/// In-memory store with the same behaviour, for tests and `Memory` storage.
#[derive(Default)]
pub struct MemoryStore {
    data: Mutex<MemoryMap>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryMap> {
        // A poisoned map is still a consistent map: every write below is a single insert/remove.
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl StateStore for MemoryStore {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().get(&(cf, key.to_vec())).cloned())
    }

    fn scan_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<Entries, StoreError> {
        let map = self.lock();
        Ok(map
            .range((cf, prefix.to_vec())..)
            .take_while(|((c, k), _)| *c == cf && k.starts_with(prefix))
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn write(&self, ops: Vec<WriteOp>, _sync: bool) -> Result<(), StoreError> {
        let mut map = self.lock();
        for op in ops {
            match op {
                WriteOp::Put(cf, k, v) => {
                    map.insert((cf, k), v);
                }
                WriteOp::Delete(cf, k) => {
                    map.remove(&(cf, k));
                }
            }
        }
        Ok(())
    }
}

/// A store whose writes fail while `failing` is set (as RocksDB's do after
/// ENOSPC), for tests of what a failed write must not lose.
#[cfg(test)]
#[derive(Default)]
pub struct FlakyStore {
    pub inner: MemoryStore,
    pub failing: std::sync::atomic::AtomicBool,
}

#[cfg(test)]
impl FlakyStore {
    pub fn failing() -> Self {
        Self { inner: MemoryStore::default(), failing: true.into() }
    }
}

#[cfg(test)]
impl StateStore for FlakyStore {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(cf, key)
    }
    fn scan_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<Entries, StoreError> {
        self.inner.scan_prefix(cf, prefix)
    }
    fn write(&self, ops: Vec<WriteOp>, sync: bool) -> Result<(), StoreError> {
        if self.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(StoreError::Db("IO error: No space left on device".into()));
        }
        self.inner.write(ops, sync)
    }
}

/// Exclusive ownership of a root by one process (an flock held while it runs).
pub struct RootLock {
    _lock: nix::fcntl::Flock<fs::File>,
}

impl RootLock {
    pub fn acquire(path: &Path) -> Result<Self, StoreError> {
        let io = |e| StoreError::Io(path.to_path_buf(), e);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| StoreError::Io(dir.to_path_buf(), e))?;
        }
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(crate::permissions::PRIVATE_FILE)
            .open(path)
            .map_err(io)?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                lock.set_len(0).map_err(io)?;
                lock.rewind().map_err(io)?;
                write!(lock, "{}", std::process::id()).map_err(io)?;
                Ok(Self { _lock: lock })
            }
            Err((mut file, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = if pid.trim().is_empty() { "unknown".to_string() } else { pid.trim().to_string() };
                Err(StoreError::Locked { path: path.to_path_buf(), pid })
            }
            Err((_, errno)) => Err(io(std::io::Error::from(errno))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(s: &dyn StateStore) {
        s.put(Cf::Deployments, b"a/1", b"x").unwrap();
        s.put(Cf::Deployments, b"a/2", b"y").unwrap();
        s.put(Cf::Deployments, b"b/1", b"z").unwrap();
        s.put(Cf::Shadows, b"a/3", b"w").unwrap();
        assert_eq!(s.get(Cf::Deployments, b"a/1").unwrap(), Some(b"x".to_vec()));
        let scan = s.scan_prefix(Cf::Deployments, b"a/").unwrap();
        assert_eq!(scan, vec![(b"a/1".to_vec(), b"x".to_vec()), (b"a/2".to_vec(), b"y".to_vec())]);
        s.write(
            vec![WriteOp::Delete(Cf::Deployments, b"a/1".to_vec()), WriteOp::Put(Cf::Deployments, b"a/9".to_vec(), b"q".to_vec())],
            true,
        )
        .unwrap();
        assert_eq!(s.get(Cf::Deployments, b"a/1").unwrap(), None);
        assert_eq!(s.scan_prefix(Cf::Deployments, b"a/").unwrap().len(), 2);
    }

    #[cfg(feature = "rocksdb")]
    #[test]
    fn memory_and_rocks_agree() {
        exercise(&MemoryStore::default());
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RocksStore::open(dir.path()).unwrap();
            exercise(&s);
        }
        let s = RocksStore::open(dir.path()).unwrap();
        assert_eq!(s.get(Cf::Deployments, b"a/9").unwrap(), Some(b"q".to_vec()));
    }

    #[test]
    fn the_store_is_private_to_the_core() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        fs::create_dir(&db).unwrap();
        fs::set_permissions(&db, fs::Permissions::from_mode(0o755)).unwrap();
        let s = RocksStore::open(&db).unwrap();
        s.put(Cf::Shadows, b"k", b"v").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&db), 0o700);
        let files: Vec<PathBuf> = fs::read_dir(&db).unwrap().map(|e| e.unwrap().path()).collect();
        assert!(files.len() > 2, "{files:?}");
        for f in files.iter().filter(|f| f.is_file()) {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
    }

    #[test]
    fn second_lock_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ggcore.lock");
        let _first = RootLock::acquire(&p).unwrap();
        let err = RootLock::acquire(&p).err().unwrap();
        let text = err.to_string();
        assert!(text.contains("another ggcore is running"), "{text}");
        assert!(text.contains(&std::process::id().to_string()), "{text}");
    }
}

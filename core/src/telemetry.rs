//! Logging and rate limits.
//!
//! The core logs to stderr (human-readable, or JSON with `--log-format json`) and,
//! once the root is known, to `ggc/var/log/system/runtime.log` in GGC's line
//! format: `[2018-06-01T12:00:00.000Z][INFO]-message key=value`. The file is
//! rotated by size (`runtime.log.1`), bounded by the GreengrassSystem logger's
//! `Space` when the group gives one.

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use ggcore_plugin_abi::LogLevel;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Allows an action at most once per interval (for repeated warnings).
#[derive(Debug)]
pub struct RateLimit {
    interval_ms: u64,
    last: AtomicU64,
}

impl RateLimit {
    pub fn per_second(n: u64) -> Self {
        Self { interval_ms: 1000 / n.max(1), last: AtomicU64::new(0) }
    }

    pub fn allow(&self) -> bool {
        let now = now_ms();
        let last = self.last.load(Ordering::Relaxed);
        now.saturating_sub(last) >= self.interval_ms && self.last.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// `2018-06-01T12:00:00.000Z`
pub fn ggc_timestamp(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// GGC's name of a tracing level (the names are `LogLevel`'s).
pub fn ggc_level(level: &Level) -> &'static str {
    let level = match *level {
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warn,
        Level::INFO => LogLevel::Info,
        Level::DEBUG | Level::TRACE => LogLevel::Debug,
    };
    level.as_str()
}

/// A log file rotated by size: `name` and `name.1`, together at most `max_bytes`.
pub struct RotatingFile {
    path: PathBuf,
    file: Option<fs::File>,
    written: u64,
    max_bytes: u64,
}

impl RotatingFile {
    /// Opens (creating) `path` for appending. The file is the core's only
    /// (0600; directories it makes 0700): logs are read by the operator, never
    /// by functions, their own included.
    pub fn open(path: PathBuf, max_bytes: u64) -> std::io::Result<Self> {
        if let Some(d) = path.parent() {
            crate::permissions::create_dirs(d, crate::permissions::PRIVATE_DIR).map_err(|e| e.source)?;
        }
        let file = Self::open_file(&path)?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self { path, file: Some(file), written, max_bytes: max_bytes.max(16 * 1024) })
    }

    pub fn set_max_bytes(&mut self, max: u64) {
        self.max_bytes = max.max(16 * 1024);
    }

    pub fn write_line(&mut self, line: &str) {
        // One record never takes more than a quarter of the bound.
        let limit = (self.max_bytes / 4) as usize;
        let cut;
        let line = if line.len() > limit {
            let mut end = limit.saturating_sub(64);
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            cut = format!("{} [cut: {} more bytes]\n", &line[..end], line.len() - end);
            cut.as_str()
        } else {
            line
        };
        if self.written + line.len() as u64 > self.max_bytes / 2 {
            self.rotate();
        }
        if let Some(f) = self.file.as_mut() {
            if f.write_all(line.as_bytes()).is_ok() {
                self.written += line.len() as u64;
            }
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        let _ = fs::rename(&self.path, &old);
        self.file = Self::open_file(&self.path).ok();
        self.written = 0;
    }

    fn open_file(path: &std::path::Path) -> std::io::Result<fs::File> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mode = crate::permissions::PRIVATE_FILE;
        let file = fs::OpenOptions::new().create(true).append(true).mode(mode).open(path)?;
        // A file made earlier with a laxer mode is tightened.
        if file.metadata()?.permissions().mode() & 0o777 != mode {
            file.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        Ok(file)
    }
}

/// Default bound of the system log when the group sets none (two files of 5 MiB).
pub const DEFAULT_SYSTEM_LOG_BYTES: u64 = 10 * 1024 * 1024;

static SYSTEM_LOG: OnceLock<Mutex<RotatingFile>> = OnceLock::new();

/// Starts writing the core's log to `dir/runtime.log`.
pub fn open_system_log(dir: PathBuf) -> std::io::Result<()> {
    let f = RotatingFile::open(dir.join("runtime.log"), DEFAULT_SYSTEM_LOG_BYTES)?;
    let _ = SYSTEM_LOG.set(Mutex::new(f));
    Ok(())
}

/// Applies a group's GreengrassSystem logger `Space` (KB).
pub fn set_system_log_space(kb: Option<u64>) {
    if let Some(m) = SYSTEM_LOG.get() {
        let mut f = m.lock().unwrap_or_else(|p| p.into_inner());
        f.set_max_bytes(kb.map(|k| k * 1024).unwrap_or(DEFAULT_SYSTEM_LOG_BYTES));
    }
}

struct LineVisitor {
    message: String,
    fields: String,
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

/// Writes events to the system log in GGC's line format.
struct GgcFileLayer;

impl<S: Subscriber> Layer<S> for GgcFileLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let Some(file) = SYSTEM_LOG.get() else { return };
        let mut v = LineVisitor { message: String::new(), fields: String::new() };
        event.record(&mut v);
        let line = format!("[{}][{}]-{}{}\n", ggc_timestamp(now_ms()), ggc_level(event.metadata().level()), v.message, v.fields);
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        f.write_line(&line);
    }
}

/// Releases the pages of this executable's code and read-only data that start-up
/// touched (argument parsing, state store opening, certificate loading, and the
/// kernel's fault-around of a cached binary): clean, file-backed pages that the
/// core does not need again while it idles. Pages in use fault back in from the
/// page cache. Returns the bytes advised.
pub fn release_startup_pages() -> usize {
    let Ok(exe) = std::env::current_exe() else { return 0 };
    let exe = exe.display().to_string();
    let Ok(maps) = fs::read_to_string("/proc/self/maps") else { return 0 };
    let mut advised = 0;
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else { continue };
        let path = parts.nth(3).unwrap_or("");
        // Only read-only or executable mappings of the executable itself (never
        // writable data, which may hold state).
        if path != exe || perms.contains('w') {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else { continue };
        // SAFETY: the range is a whole mapping of this process taken from
        // /proc/self/maps; MADV_PAGEOUT only reclaims clean pages, which are
        // read back from the executable on their next use.
        let r = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) };
        if r == 0 {
            advised += end - start;
        }
    }
    advised
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Installs the global subscriber: stderr in the chosen format plus the system log file.
/// `RUST_LOG` overrides the default level (`info`).
pub fn init(format: LogFormat) {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(GgcFileLayer.with_filter(filter()));
    let result = match format {
        LogFormat::Human => {
            registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).with_filter(filter())).try_init()
        }
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).with_target(false).with_filter(filter()))
            .try_init(),
    };
    let _ = result;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_format() {
        assert_eq!(ggc_timestamp(1_527_854_400_123), "2018-06-01T12:00:00.123Z");
    }

    #[test]
    fn rotation_bounds_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::open(dir.path().join("runtime.log"), 16 * 1024).unwrap();
        let line = "x".repeat(99) + "\n";
        for _ in 0..1000 {
            f.write_line(&line);
        }
        let a = fs::metadata(dir.path().join("runtime.log")).unwrap().len();
        let b = fs::metadata(dir.path().join("runtime.log.1")).unwrap().len();
        assert!(a + b <= 16 * 1024, "{a} + {b}");
    }

    #[test]
    fn log_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("user/us-east-1/000000000000/f.log");
        let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let mut f = RotatingFile::open(path.clone(), 16 * 1024).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("user/us-east-1")), 0o700);
        let line = "y".repeat(99) + "\n";
        for _ in 0..200 {
            f.write_line(&line);
        }
        assert_eq!(mode(&dir.path().join("user/us-east-1/000000000000/f.log.1")), 0o600, "a rotated file too");
        drop(f);
        // A file an earlier version left readable is tightened when opened.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let _f = RotatingFile::open(path.clone(), 16 * 1024).unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn one_huge_record_is_cut_to_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::open(dir.path().join("runtime.log"), 16 * 1024).unwrap();
        f.write_line(&("é".repeat(100_000) + "\n"));
        let a = fs::metadata(dir.path().join("runtime.log")).unwrap().len();
        assert!(a <= 4 * 1024, "{a}");
        assert!(fs::read_to_string(dir.path().join("runtime.log")).unwrap().contains("[cut: "));
    }

    #[test]
    fn rate_limit_allows_once_per_interval() {
        let r = RateLimit::per_second(1);
        assert!(r.allow());
        assert!(!r.allow());
    }
}

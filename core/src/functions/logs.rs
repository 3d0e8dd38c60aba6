//! Each function's log: `ggc/var/log/user/<region>/<account>/<name>.log`, one
//! line per record in GGC's format (`[2018-06-01T12:00:00.000Z][INFO]-message`),
//! rotated by size and bounded by the Lambda logger's `Space`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use ggcore_plugin_abi::LogLevel;

use crate::group::FunctionArn;
use crate::layout::Layout;
use crate::telemetry::{ggc_timestamp, now_ms, RotatingFile};

/// Bound of one function's log files when the group sets no Lambda `Space`.
pub const DEFAULT_FUNCTION_LOG_BYTES: u64 = 1024 * 1024;

pub struct FunctionLog {
    pub path: PathBuf,
    file: Mutex<Option<RotatingFile>>,
    /// Lines below this level are dropped (the Lambda logger's `Level`), as
    /// a `LogLevel` number.
    min_level: AtomicU8,
}

impl FunctionLog {
    pub fn path_for(layout: &Layout, arn: &FunctionArn) -> PathBuf {
        let region = if arn.region().is_empty() { "local" } else { arn.region() };
        let account = if arn.account().is_empty() { "local" } else { arn.account() };
        layout.user_log_dir().join(region).join(account).join(format!("{}.log", arn.name()))
    }

    /// Opens (creating) the log; failures leave a log that drops lines, with one
    /// warning in the system log.
    pub fn open(layout: &Layout, arn: &FunctionArn, max_bytes: u64) -> Self {
        let path = Self::path_for(layout, arn);
        let file = match RotatingFile::open(path.clone(), max_bytes) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(function = %arn, path = %path.display(), error = %e, "cannot write the function's log");
                None
            }
        };
        Self { path, file: Mutex::new(file), min_level: AtomicU8::new(LogLevel::Info as u8) }
    }

    /// Sets the lowest level written (from the group's Lambda logger).
    pub fn set_level(&self, level: LogLevel) {
        self.min_level.store(level as u8, Ordering::Relaxed);
    }

    /// Writes `message` (each of its lines) at `level`.
    pub fn write(&self, level: LogLevel, message: &str) {
        if (level as u8) < self.min_level.load(Ordering::Relaxed) {
            return;
        }
        let level = level.as_str();
        let ts = ggc_timestamp(now_ms());
        let mut text = String::new();
        for line in message.trim_end_matches(['\n', '\r']).split('\n') {
            text.push_str(&format!("[{ts}][{level}]-{}\n", line.trim_end_matches('\r')));
        }
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = guard.as_mut() {
            f.write_line(&text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_time_and_level() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::new(d.path().to_path_buf(), None);
        let arn = FunctionArn::parse("arn:aws:lambda:eu-west-1:123456789012:function:hello:1").unwrap();
        let log = FunctionLog::open(&layout, &arn, DEFAULT_FUNCTION_LOG_BYTES);
        log.write(LogLevel::Error, "Traceback:\n  line 1\n");
        log.write(LogLevel::Debug, "not written at the default INFO level");
        let text = std::fs::read_to_string(d.path().join("ggc/var/log/user/eu-west-1/123456789012/hello.log")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with('[') && lines[0].ends_with("][ERROR]-Traceback:"), "{}", lines[0]);
        assert!(lines[1].ends_with("][ERROR]-  line 1"));
    }
}

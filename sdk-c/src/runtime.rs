//! The connection to the native runtime plugin: the two pipes, the reader
//! thread, host calls waiting for their replies, the invocation queue and the
//! invocation loop.

use std::collections::{HashMap, VecDeque};
use std::ffi::{c_int, CString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

use ggcore_frame::{read_frame, Frame};
use serde_json::{json, Value};

use crate::pure::*;

/// The environment variable the plugin sets: `<from plugin fd>,<to plugin fd>`.
pub const FDS_ENV: &str = "GGCORE_SDK_FDS";

/// Longest log line sent (longer ones are cut).
pub const MAX_LOG_LINE: usize = 256 * 1024;
/// Header bytes kept for the fields a call adds (`corr`, `t`).
const HEADER_ROOM: usize = 64;

/// Frame level of a warning.
const WARN: u64 = 2;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
/// Serializes `gg_global_init` calls.
static INIT: Mutex<()> = Mutex::new(());
/// The write end of the self-pipe the SIGTERM handler writes to (-1 before).
static SIGNAL_FD: AtomicI32 = AtomicI32::new(-1);

/// Locks, going on after a panic elsewhere (the data stays usable).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The connected library.
pub struct Runtime {
    /// This function's ARN, from `start`.
    pub function_arn: CString,
    to_plugin: Mutex<File>,
    next_corr: AtomicU64,
    pending: Mutex<Pending>,
    queue: Mutex<Queue>,
    queued: Condvar,
    /// The invocation being served (process-wide: a handler may use threads).
    pub current: Mutex<Option<Current>>,
    started: AtomicBool,
}

/// Host calls waiting for their reply.
struct Pending {
    waiting: HashMap<u64, Sender<Frame>>,
    /// fd 3 ended: no reply will come any more.
    gone: bool,
}

struct Queue {
    invocations: VecDeque<Invocation>,
    stop: bool,
}

/// An `invoke` frame.
struct Invocation {
    id: u64,
    client_context: CString,
    event: Vec<u8>,
}

/// The invocation a handler is serving.
pub struct Current {
    pub event: Vec<u8>,
    pub pos: usize,
    pub response: Vec<u8>,
    pub error: Option<String>,
}

/// The connected library, or `GGE_INVALID_STATE` before `gg_global_init`.
pub fn runtime() -> GgResult<&'static Runtime> {
    RUNTIME.get().ok_or(GGE_INVALID_STATE)
}

/// Whether `gg_global_init` succeeded.
pub fn connected() -> Option<&'static Runtime> {
    RUNTIME.get()
}

/// `gg_global_init(0)`.
pub fn init() -> GgResult<()> {
    let _serial = lock(&INIT);
    if RUNTIME.get().is_some() {
        return Ok(());
    }
    let Some((from_fd, to_fd)) = std::env::var(FDS_ENV).ok().as_deref().and_then(parse_fds) else {
        stderr_line(&format!("ggcore C SDK: {FDS_ENV} is not set (or not two open descriptors): this process was not started by ggcore"));
        return Err(GGE_INVALID_STATE);
    };
    // The program's own children must not take these numbers for pipes to the
    // plugin: the descriptors are close-on-exec, so the names go too.
    // (gg_global_init runs before any other thread, as the SDK requires.)
    std::env::remove_var(FDS_ENV);
    for fd in [from_fd, to_fd] {
        // SAFETY: fstat fills a zeroed stat for a descriptor number; fcntl
        // only reads and sets flags.
        let is_pipe = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFIFO
        };
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if !is_pipe || flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
            stderr_line(&format!(
                "ggcore C SDK: descriptor {fd} from {FDS_ENV} is not an open pipe: this process was not started by ggcore"
            ));
            return Err(GGE_INVALID_STATE);
        }
    }
    // SAFETY: both descriptors are open and, per the plugin's contract, ours.
    let (mut from_plugin, to_plugin) = unsafe { (File::from_raw_fd(from_fd), File::from_raw_fd(to_fd)) };
    let start = match read_frame(&mut from_plugin) {
        Ok(Some(f)) if f.kind() == "start" => f,
        Ok(Some(f)) => protocol_error(&format!("the first frame is {:?}, not start", f.kind())),
        Ok(None) => {
            stderr_line("ggcore C SDK: the plugin closed the pipe before starting the function");
            return Err(GGE_INTERNAL_FAILURE);
        }
        Err(e) => protocol_error(&e.to_string()),
    };
    let mut signal_pipe = [-1; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(signal_pipe.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(GGE_INTERNAL_FAILURE);
    }
    SIGNAL_FD.store(signal_pipe[1], Ordering::SeqCst);
    let rt = Runtime {
        function_arn: c_string(start.str("functionArn")),
        to_plugin: Mutex::new(to_plugin),
        next_corr: AtomicU64::new(1),
        pending: Mutex::new(Pending { waiting: HashMap::new(), gone: false }),
        queue: Mutex::new(Queue { invocations: VecDeque::new(), stop: false }),
        queued: Condvar::new(),
        current: Mutex::new(None),
        started: AtomicBool::new(false),
    };
    let rt: &'static Runtime = RUNTIME.get_or_init(|| rt);
    let signal_read = signal_pipe[0];
    let reader = std::thread::Builder::new().name("ggcore-sdk-reader".into()).spawn(move || {
        // A panic here must not unwind into nothing: treat it as the end of fd 3.
        if std::panic::catch_unwind(|| read_loop(rt, from_plugin, signal_read)).is_err() {
            rt.ended();
        }
    });
    if reader.is_err() {
        rt.ended();
        return Err(GGE_INTERNAL_FAILURE);
    }
    Ok(())
}

/// `"3,4"` → `(3, 4)`.
pub fn parse_fds(s: &str) -> Option<(RawFd, RawFd)> {
    let (a, b) = s.split_once(',')?;
    let a: RawFd = a.trim().parse().ok()?;
    let b: RawFd = b.trim().parse().ok()?;
    (a >= 0 && b >= 0 && a != b).then_some((a, b))
}

/// Text up to its first NUL (a C string cannot hold more).
pub fn c_string(s: &str) -> CString {
    let s = s.split('\0').next().unwrap_or("");
    CString::new(s).unwrap_or_default()
}

/// Writes a line to stderr; a closed stderr is not an error (eprintln! would
/// panic).
pub fn stderr_line(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn protocol_error(message: &str) -> ! {
    stderr_line(&format!("ggcore C SDK: protocol error from the plugin: {message}"));
    // Not exit(): this may be another thread than main, and C++ static
    // destructors must not run under a main that is still going.
    // SAFETY: flushing stdio and ending the process.
    unsafe {
        libc::fflush(std::ptr::null_mut());
        libc::_exit(2)
    }
}

/// Owns fd 3: queues invocations, hands replies to their callers, and notes
/// a stop (a `stop` frame, the end of fd 3, or SIGTERM via the self-pipe).
fn read_loop(rt: &'static Runtime, mut from_plugin: File, signal_read: RawFd) {
    loop {
        let mut fds = [
            libc::pollfd { fd: from_plugin.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: signal_read, events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: two valid pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            rt.ended();
            return;
        }
        if fds[1].revents != 0 {
            let mut drain = [0u8; 64];
            // SAFETY: reads into a local buffer from our non-blocking pipe.
            while unsafe { libc::read(signal_read, drain.as_mut_ptr().cast(), drain.len()) } > 0 {}
            rt.request_stop();
        }
        if fds[0].revents == 0 {
            continue;
        }
        match read_frame(&mut from_plugin) {
            Ok(Some(frame)) => rt.dispatch(frame),
            Ok(None) => {
                rt.ended();
                return;
            }
            Err(e) => protocol_error(&e.to_string()),
        }
    }
}

impl Runtime {
    fn dispatch(&self, frame: Frame) {
        match frame.kind() {
            "invoke" => {
                let invocation = Invocation {
                    id: frame.u64("id").unwrap_or(0),
                    client_context: c_string(frame.str("clientContext")),
                    event: frame.payload,
                };
                lock(&self.queue).invocations.push_back(invocation);
                self.queued.notify_all();
            }
            "reply" => {
                let corr = frame.u64("corr").unwrap_or(0);
                let waiter = lock(&self.pending).waiting.remove(&corr);
                match waiter {
                    // The caller may have given up (it cannot): nothing to do.
                    Some(tx) => drop(tx.send(frame)),
                    None => drop(self.log(WARN, &format!("ggcore C SDK: a reply for an unknown call {corr}"))),
                }
            }
            "stop" => self.request_stop(),
            other => drop(self.log(WARN, &format!("ggcore C SDK: ignoring a {other:?} frame from the plugin"))),
        }
    }

    /// Asks the invocation loop to end after the current handler.
    fn request_stop(&self) {
        lock(&self.queue).stop = true;
        self.queued.notify_all();
    }

    /// fd 3 ended: no reply will come and the function is to stop.
    fn ended(&self) {
        {
            let mut pending = lock(&self.pending);
            pending.gone = true;
            // Dropping the senders wakes every waiting caller with an error.
            pending.waiting.clear();
        }
        self.request_stop();
    }

    /// Writes one whole frame to the plugin; false when the pipe is gone.
    pub fn send(&self, frame: &Frame) -> bool {
        let bytes = frame.encode();
        let mut out = lock(&self.to_plugin);
        without_sigpipe(|| out.write_all(&bytes)).is_ok()
    }

    /// A `log` frame (level 0..4); a line over [`MAX_LOG_LINE`] bytes is cut
    /// there (the plugin would take a longer frame for a protocol error).
    pub fn log(&self, level: u64, text: &str) -> bool {
        let mut end = text.len().min(MAX_LOG_LINE);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.send(&Frame::new("log", json!({"level": level}), text.as_bytes()[..end].to_vec()))
    }

    /// Sends a host call and waits for its reply.
    pub fn call(&self, mut fields: Value, payload: Vec<u8>) -> GgResult<Frame> {
        // The plugin ends a program whose frame is over its limits: refuse
        // here (topics, ARNs and contexts travel in the header).
        if payload.len() > ggcore_frame::MAX_PAYLOAD || fields.to_string().len() + HEADER_ROOM > ggcore_frame::MAX_HEADER {
            return Err(GGE_INVALID_PARAMETER);
        }
        let corr = self.next_corr.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        {
            let mut pending = lock(&self.pending);
            if pending.gone {
                return Err(GGE_INTERNAL_FAILURE);
            }
            pending.waiting.insert(corr, tx);
        }
        if let Value::Object(m) = &mut fields {
            m.insert("corr".into(), corr.into());
        }
        if !self.send(&Frame::new("call", fields, payload)) {
            lock(&self.pending).waiting.remove(&corr);
            return Err(GGE_INTERNAL_FAILURE);
        }
        rx.recv().map_err(|_| GGE_INTERNAL_FAILURE)
    }

    /// Marks the runtime started; false if it was already.
    pub fn mark_started(&self) -> bool {
        !self.started.swap(true, Ordering::SeqCst)
    }

    /// Serves invocations with `handler` until asked to stop.
    pub fn run(&self, handler: unsafe extern "C-unwind" fn(*const GgLambdaContext)) {
        loop {
            let invocation = {
                let mut queue = lock(&self.queue);
                loop {
                    if queue.stop {
                        return;
                    }
                    if let Some(i) = queue.invocations.pop_front() {
                        break i;
                    }
                    queue = self.queued.wait(queue).unwrap_or_else(|e| e.into_inner());
                }
            };
            let Invocation { id, client_context, event } = invocation;
            *lock(&self.current) = Some(Current { event, pos: 0, response: Vec::new(), error: None });
            let context = GgLambdaContext { function_arn: self.function_arn.as_ptr(), client_context: client_context.as_ptr() };
            // SAFETY: the program's handler, given a context valid for the call.
            unsafe { handler(&context) };
            // stdout is fully buffered when it is a pipe: let the handler's
            // printf lines reach the function's log now.
            // SAFETY: fflush(NULL) flushes every C output stream.
            unsafe { libc::fflush(std::ptr::null_mut()) };
            let done = lock(&self.current).take();
            let frame = match done {
                Some(Current { error: Some(message), .. }) => {
                    let doc = json!({"errorMessage": message}).to_string().into_bytes();
                    Frame::new("error", json!({"id": id, "unhandled": false}), doc)
                }
                Some(Current { response, .. }) => Frame::new("result", json!({"id": id}), response),
                None => Frame::new("result", json!({"id": id}), Vec::new()),
            };
            // A write error means the plugin is gone: the reader sees the end
            // of fd 3 and stops the loop.
            self.send(&frame);
        }
    }
}

/// Runs a write with SIGPIPE blocked in this thread, so that a closed pipe
/// is an EPIPE error rather than the end of the process; a SIGPIPE the write
/// raised is consumed before the mask is restored.
fn without_sigpipe<T>(write: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    // SAFETY: signal-set manipulation on local sets; the mask change is for
    // this thread only and restored below.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        let mut before: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        libc::sigpending(&mut before);
        let was_pending = libc::sigismember(&before, libc::SIGPIPE) == 1;
        let r = write();
        if let Err(e) = &r {
            if e.raw_os_error() == Some(libc::EPIPE) && !was_pending {
                let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                libc::sigtimedwait(&set, std::ptr::null_mut(), &zero);
            }
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        r
    }
}

/// The SIGTERM handler: only writes a byte to the self-pipe (async-signal-safe).
extern "C" fn on_sigterm(_signal: c_int) {
    let fd = SIGNAL_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: errno is thread-local; write(2) is async-signal-safe; errno
        // is restored so the interrupted code does not see ours.
        unsafe {
            let errno = *libc::__errno_location();
            let byte = 1u8;
            libc::write(fd, (&byte as *const u8).cast(), 1);
            *libc::__errno_location() = errno;
        }
    }
}

/// Makes SIGTERM stop the invocation loop (as AWS's runtime does, this
/// replaces the program's SIGTERM handler).
pub fn install_sigterm() -> GgResult<()> {
    // SAFETY: a zeroed sigaction is valid; the handler is async-signal-safe.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigterm as extern "C" fn(c_int) as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut()) != 0 {
            return Err(GGE_INTERNAL_FAILURE);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fds_come_from_two_numbers() {
        assert_eq!(parse_fds("3,4"), Some((3, 4)));
        assert_eq!(parse_fds(" 7 , 9"), Some((7, 9)));
        for bad in ["", "3", "3,", "a,4", "3,3", "-1,4", "3,4,5"] {
            assert_eq!(parse_fds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn c_strings_stop_at_a_nul() {
        assert_eq!(c_string("{\"a\":1}").as_bytes(), b"{\"a\":1}");
        assert_eq!(c_string("ab\0cd").as_bytes(), b"ab");
        assert_eq!(c_string("").as_bytes(), b"");
    }
}

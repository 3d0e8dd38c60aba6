//! One function instance: the child process, its input ([`ToChild`]), and a reader thread that answers the child's host calls and hands
//! results back to `invoke`.
//!
//! When the child ends on its own (an uncaught exception, `process.exit`, a
//! signal, the kernel's OOM killer), the worker ends the same way, so the
//! core reports it exactly as for any other runtime.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ggcore_plugin_abi::abi_stable::std_types::RResult;
use ggcore_plugin_abi::{
    ErrorKind, FunctionError, FunctionInstance, HostBox, HostError, HostErrorCode, InvocationContext, InvocationType, InvokeArgs, LogLevel,
    PublishArgs, ShadowOp,
};
use serde_json::json;

use crate::spawn::Spawned;
use crate::to_child::ToChild;
use ggcore_frame::{read_frame, Frame};

/// What the reader hands to `start` and `invoke`.
enum Event {
    Ready,
    StartFailed(String),
    Result {
        id: u64,
        payload: Vec<u8>,
    },
    Error {
        id: u64,
        unhandled: bool,
        payload: Vec<u8>,
    },
    /// The child ended (only reported while starting; later the worker ends).
    Ended(String),
}

/// How long after the child's last answer the worker waits before ending the way
/// the child ended (see `read_loop`).
const ANSWER_GRACE: Duration = Duration::from_millis(20);

const STARTING: u8 = 0;
const RUNNING: u8 = 1;
const STOPPING: u8 = 2;

/// A running the child instance.
pub struct ChildInstance {
    /// What the child is, in messages: `node`, `the executable`.
    name: String,
    pid: libc::pid_t,
    to_child: ToChild,
    events: Receiver<Event>,
    state: Arc<AtomicU8>,
    /// Closed (disconnected) once the reader has reaped the child.
    reaped: Receiver<()>,
    next_id: u64,
}

/// What the reader thread needs to serve the child's calls.
struct Calls {
    name: String,
    host: Arc<HostBox>,
    /// The instance's own ARN: a publish claiming it needs no check by the core.
    arn: String,
    to_child: ToChild,
}

impl ChildInstance {
    /// Takes over a spawned the child, sends it `start` and waits for its answer.
    /// `name` says what the child is in messages (`node`, `the executable`).
    pub fn start(name: &str, spawned: Spawned, start: Frame, host: HostBox, arn: &str) -> Result<Self, String> {
        let Spawned { child, to_child, from_child } = spawned;
        let pid = child.id() as libc::pid_t;
        // The reader reaps the child; the Child handle is not needed.
        drop(child);
        let (events_tx, events) = mpsc::channel();
        let (reaped_tx, reaped) = mpsc::channel::<()>();
        let state = Arc::new(AtomicU8::new(STARTING));
        let to_child = ToChild::new(to_child).map_err(|e| format!("cannot start the writer to {name}: {e}"))?;
        to_child.send(start.encode());
        let calls = Calls { name: name.to_string(), host: Arc::new(host), arn: arn.to_string(), to_child: to_child.clone() };
        let reader_state = state.clone();
        let reader = std::thread::Builder::new().name("ggcore-child-reader".into()).spawn(move || {
            read_loop(from_child, pid, calls, events_tx, reader_state);
            drop(reaped_tx);
        });
        if let Err(e) = reader {
            // Nobody will read the child: end it (its writer thread too).
            to_child.close();
            // SAFETY: only a signal to our child, not reaped yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return Err(format!("cannot start a thread: {e}"));
        }
        let mut instance = ChildInstance { name: name.to_string(), pid, to_child, events, state, reaped, next_id: 1 };
        match instance.events.recv() {
            // The reader moved the state to RUNNING before saying so: a child
            // ending from then on ends the worker too.
            Ok(Event::Ready) => Ok(instance),
            Ok(Event::StartFailed(message)) => {
                instance.stop();
                Err(message)
            }
            Ok(Event::Ended(how)) => Err(format!("{name} {how} while starting the function (its output is in the function's log)")),
            Ok(_) | Err(_) => {
                instance.stop();
                Err(format!("{name} answered the start with something else than ready"))
            }
        }
    }

    /// Closes the child's input (it exits at once) and waits a little for it to
    /// end, then kills it.
    fn stop(&mut self) {
        self.state.store(STOPPING, Ordering::SeqCst);
        self.to_child.close();
        // Disconnected: the child was reaped already (its pid may be reused).
        if let Err(mpsc::RecvTimeoutError::Timeout) = self.reaped.recv_timeout(Duration::from_secs(2)) {
            // SAFETY: kill only sends a signal; the pid is the child's, not yet
            // reaped (the reader reaps it and has not finished).
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.reaped.recv_timeout(Duration::from_secs(2));
        }
    }
}

impl FunctionInstance for ChildInstance {
    fn invoke(&mut self, event: Vec<u8>, context: &InvocationContext) -> Result<Vec<u8>, FunctionError> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = Frame::new(
            "invoke",
            json!({
                "id": id,
                "invocationId": context.invocation_id.as_str(),
                "clientContext": context.client_context.as_str(),
                "deadlineUnixMs": context.deadline_unix_ms,
                "event": context.invocation_type == InvocationType::Event,
            }),
            event,
        );
        let sent = self.to_child.send(frame.encode());
        if !sent {
            return Err(FunctionError::new(ErrorKind::Unhandled, &format!("{} is gone", self.name)));
        }
        loop {
            match self.events.recv() {
                Ok(Event::Result { id: got, payload }) if got == id => return Ok(payload),
                Ok(Event::Error { id: got, unhandled, payload }) if got == id => {
                    let kind = if unhandled { ErrorKind::Unhandled } else { ErrorKind::Handled };
                    return Err(FunctionError { kind, payload: payload.into() });
                }
                // A late answer to an earlier invocation: not this one's.
                Ok(Event::Result { .. } | Event::Error { .. } | Event::Ready | Event::StartFailed(_)) => continue,
                Ok(Event::Ended(how)) => return Err(FunctionError::new(ErrorKind::Unhandled, &format!("{} {how}", self.name))),
                Err(_) => return Err(FunctionError::new(ErrorKind::Unhandled, &format!("{} is gone", self.name))),
            }
        }
    }

    fn shutdown(&mut self) {
        self.stop();
    }
}

impl Drop for ChildInstance {
    fn drop(&mut self) {
        if self.state.load(Ordering::SeqCst) != STOPPING {
            self.stop();
        }
    }
}

/// Reads the child's frames until it ends, then reaps it; while the instance is
/// running, ends the worker the way the child ended.
fn read_loop(mut from_child: File, pid: libc::pid_t, calls: Calls, events: Sender<Event>, state: Arc<AtomicU8>) {
    let calls = Arc::new(calls);
    let mut protocol_error = None;
    // When the child last answered an invocation.
    let mut answered: Option<Instant> = None;
    loop {
        if !readable_or_alive(&from_child, pid) {
            break;
        }
        let frame = match read_frame(&mut from_child) {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                protocol_error = Some(e.to_string());
                break;
            }
        };
        let event = match frame.kind() {
            "ready" => {
                // Before `start` hears it, so that no end of the child falls
                // between the two unmirrored.
                let _ = state.compare_exchange(STARTING, RUNNING, Ordering::SeqCst, Ordering::SeqCst);
                Event::Ready
            }
            "startFailed" => Event::StartFailed(frame.str("message").to_string()),
            "result" => {
                answered = Some(Instant::now());
                Event::Result { id: frame.u64("id").unwrap_or(0), payload: frame.payload }
            }
            "error" => {
                answered = Some(Instant::now());
                Event::Error { id: frame.u64("id").unwrap_or(0), unhandled: frame.flag("unhandled"), payload: frame.payload }
            }
            "log" => {
                let level = LogLevel::from_u8(frame.u64("level").unwrap_or(1).min(4) as u8);
                calls.host.log(level, String::from_utf8_lossy(&frame.payload).as_ref().into());
                continue;
            }
            "call" => {
                serve_call(&calls, frame);
                continue;
            }
            other => {
                protocol_error = Some(format!("{} sent an unknown frame type {other:?}", calls.name));
                break;
            }
        };
        if events.send(event).is_err() {
            break;
        }
    }
    if let Some(e) = &protocol_error {
        calls.host.log(LogLevel::Error, format!("ggcore: {e} from {}; ending it", calls.name).as_str().into());
        // SAFETY: only a signal to the child, which is not reaped yet.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let status = reap(pid);
    match state.load(Ordering::SeqCst) {
        STOPPING => {}
        STARTING => {
            let _ = events.send(Event::Ended(describe(status)));
        }
        _ => {
            // The child may end right after answering (`callback(null, r);
            // process.exit()`): give the worker's main thread the time to
            // send that answer to the core before the worker ends.
            if let Some(at) = answered {
                std::thread::sleep(ANSWER_GRACE.saturating_sub(at.elapsed()));
            }
            mirror(status)
        }
    }
}

/// Waits until the child's pipe has data or ends; while it is quiet, checks every
/// second that the child is still alive (a child the child started may hold the pipe
/// open after the child itself ended). False when the child has ended.
fn readable_or_alive(from_child: &File, pid: libc::pid_t) -> bool {
    loop {
        let mut pfd = libc::pollfd { fd: from_child.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 1000) };
        if n != 0 {
            return true;
        }
        // SAFETY: a zeroed siginfo is valid; WNOWAIT leaves the child to
        // be reaped by `reap`; si_pid stays 0 when no child changed state.
        let ended = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let r = libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT);
            r == 0 && info.si_pid() == pid
        };
        if ended {
            return false;
        }
    }
}

/// Reaps the child; its wait status.
fn reap(pid: libc::pid_t) -> libc::c_int {
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return status;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 0;
        }
    }
}

fn describe(status: libc::c_int) -> String {
    if libc::WIFSIGNALED(status) {
        format!("was killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("exited with code {}", libc::WEXITSTATUS(status))
    }
}

/// Ends this worker the way the child ended.
fn mirror(status: libc::c_int) -> ! {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        // SAFETY: restoring the default action and raising the signal ends
        // the process with that signal (as the child ended).
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
        std::process::exit(128 + sig);
    }
    std::process::exit(libc::WEXITSTATUS(status))
}

fn error_reply(corr: u64, e: &HostError) -> Frame {
    Frame::new("reply", json!({"corr": corr, "ok": false, "code": e.code.as_str(), "message": e.message.as_str()}), Vec::new())
}

fn bytes_reply(corr: u64, r: RResult<ggcore_plugin_abi::abi_stable::std_types::RVec<u8>, HostError>) -> Frame {
    match r {
        RResult::ROk(bytes) => Frame::new("reply", json!({"corr": corr, "ok": true}), bytes.into_vec()),
        RResult::RErr(e) => error_reply(corr, &e),
    }
}

/// Serves one host call from the child. Publishes are served here, in order
/// (a publish the core holds back holds the function back too); invokes,
/// shadow and secret calls, which may wait for a whole timeout, on threads.
fn serve_call(calls: &Arc<Calls>, frame: Frame) {
    let corr = frame.u64("corr").unwrap_or(0);
    if frame.str("op") == "publish" {
        let claimed = frame.str("claimedSource");
        let claimed = if claimed == calls.arn { "" } else { claimed };
        let args = PublishArgs {
            topic: frame.str("topic").into(),
            payload: frame.payload.as_slice().into(),
            queue_full_policy: frame.str("queueFullPolicy").into(),
            claimed_source: claimed.into(),
        };
        let reply = match calls.host.publish(args) {
            RResult::ROk(()) => Frame::new("reply", json!({"corr": corr, "ok": true}), Vec::new()),
            RResult::RErr(e) => error_reply(corr, &e),
        };
        calls.to_child.send(reply.encode());
        return;
    }
    let to_child = calls.to_child.clone();
    let calls = calls.clone();
    let served = std::thread::Builder::new().name("ggcore-child-call".into()).spawn(move || {
        let reply = call_reply(&calls, corr, &frame);
        calls.to_child.send(reply.encode());
    });
    if let Err(e) = served {
        // Only under exhaustion; the child still gets an answer.
        let reply = error_reply(corr, &HostError::new(HostErrorCode::Internal, format!("cannot start a thread: {e}")));
        to_child.send(reply.encode());
    }
}

fn call_reply(calls: &Calls, corr: u64, frame: &Frame) -> Frame {
    match frame.str("op") {
        "invoke" => {
            let invocation_type =
                if frame.str("invocationType") == "Event" { InvocationType::Event } else { InvocationType::RequestResponse };
            let args = InvokeArgs {
                function_arn: frame.str("functionArn").into(),
                qualifier: frame.str("qualifier").into(),
                invocation_type,
                client_context: frame.str("clientContext").into(),
                payload: frame.payload.as_slice().into(),
            };
            match calls.host.invoke(args) {
                RResult::ROk(r) => Frame::new(
                    "reply",
                    json!({"corr": corr, "ok": true, "invocationId": r.invocation_id.as_str(), "functionError": r.function_error.as_str()}),
                    r.payload.into_vec(),
                ),
                RResult::RErr(e) => error_reply(corr, &e),
            }
        }
        "shadow" => {
            let op = match frame.str("operation") {
                "get" => ShadowOp::Get,
                "update" => ShadowOp::Update,
                "delete" => ShadowOp::Delete,
                other => {
                    let e = HostError::new(HostErrorCode::BadRequest, format!("unknown shadow operation {other:?}"));
                    return error_reply(corr, &e);
                }
            };
            bytes_reply(corr, calls.host.shadow(op, frame.str("thing").into(), frame.payload.as_slice().into()))
        }
        "secret" => bytes_reply(corr, calls.host.get_secret(frame.payload.as_slice().into())),
        other => error_reply(corr, &HostError::new(HostErrorCode::BadRequest, format!("unknown call {other:?}"))),
    }
}

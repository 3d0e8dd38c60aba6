//! One function instance, seen from the core: start its worker (forked by the
//! zygote, or spawned directly), serve its IPC connection, feed it work one
//! invocation at a time, and enforce the deadline of each invocation from the
//! outside (the instance is killed when it runs over).

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ggcore_ipc::{Context, Down, Outcome, Role, Up};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

use super::ipc::{new_token, read_frame};
use super::memory::MemoryControl;
use super::slot::{FunctionFailure, FunctionSlot, InstanceStatus, InvokeResult, WorkItem};
use super::spare::LineSink;
use super::zygote::ForkKind;
use super::FunctionManager;
use crate::group::Lifecycle;

/// A worker must connect within this long after it is started.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Module-level code must finish within this long (plus the function's Timeout).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// On-demand instances stop after this long without work.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Frames waiting to be written to one worker.
const WRITE_QUEUE: usize = 256;
/// Host calls of one instance handled at once (more wait: backpressure).
const CONCURRENT_CALLS: usize = 64;
/// How often the memory watcher looks at a worker.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// Why an instance ended.
#[derive(Debug)]
pub enum Ended {
    /// No work for the idle timeout (on-demand).
    Idle,
    /// The function left the group, or the core is stopping.
    Removed,
    /// The instance never started: the reason.
    StartFailed(String),
    /// The instance died or was killed: the reason.
    Died(String),
}

/// How the worker process ends and what it ended with.
pub struct Exit {
    pub(crate) dead: CancellationToken,
    status: Mutex<Option<i32>>,
    /// Set when the core killed it (timeout, memory watcher).
    killed_for: Mutex<Option<&'static str>>,
}

impl Exit {
    pub fn new() -> Arc<Self> {
        Arc::new(Self { dead: CancellationToken::new(), status: Mutex::new(None), killed_for: Mutex::new(None) })
    }

    pub fn record(&self, status: i32) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
        self.dead.cancel();
    }
}

pub(crate) fn kill(pid: u32) {
    if pid > 0 {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
    }
}

fn now_unix() -> u64 {
    crate::deploy::now_unix()
}

/// Writes the lines a worker prints to the function's log.
/// Lines are cut at this length: a function printing without newlines cannot
/// make the core hold its output in memory.
const MAX_LINE_BYTES: usize = 64 * 1024;

pub(crate) fn forward_lines<R: AsyncRead + Send + Unpin + 'static>(sink: Arc<LineSink>, stream: R, level: &'static str) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream);
        let mut line: Vec<u8> = Vec::new();
        let mut cut = 0usize;
        loop {
            let (consumed, ended) = {
                let Ok(buf) = reader.fill_buf().await else { break };
                if buf.is_empty() {
                    break;
                }
                let (chunk, ended) = match buf.iter().position(|b| *b == b'\n') {
                    Some(i) => (&buf[..i], true),
                    None => (buf, false),
                };
                let room = MAX_LINE_BYTES.saturating_sub(line.len());
                line.extend_from_slice(&chunk[..chunk.len().min(room)]);
                cut += chunk.len().saturating_sub(room);
                (chunk.len() + usize::from(ended), ended)
            };
            reader.consume(consumed);
            if ended {
                emit(&sink, level, &mut line, &mut cut);
            }
        }
        if !line.is_empty() || cut > 0 {
            emit(&sink, level, &mut line, &mut cut);
        }
    });
}

fn emit(sink: &LineSink, level: &str, line: &mut Vec<u8>, cut: &mut usize) {
    let mut text = String::from_utf8_lossy(line).into_owned();
    if *cut > 0 {
        text.push_str(&format!(" [line cut: {} more bytes]", *cut));
    }
    sink.write(level, &text);
    line.clear();
    *cut = 0;
}

/// Two pipes for a forked worker's stdout and stderr: the read ends wrapped
/// for tokio (the core keeps them), the write ends to hand to the zygote.
pub(crate) type Pipes = ((tokio::net::unix::pipe::Receiver, OwnedFd), (tokio::net::unix::pipe::Receiver, OwnedFd));

pub(crate) fn new_pipes() -> std::io::Result<Pipes> {
    let pipe = || -> std::io::Result<(tokio::net::unix::pipe::Receiver, OwnedFd)> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
        Ok((tokio::net::unix::pipe::Receiver::from_owned_fd(r)?, w))
    };
    Ok((pipe()?, pipe()?))
}

/// The connection to a running worker.
struct Conn {
    tx: mpsc::Sender<Vec<u8>>,
    results: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
}

/// Counts an instance as starting (from the moment it is decided) until it is
/// ready or gone, so that scaling decisions see it at once.
pub struct Starting {
    slot: Arc<FunctionSlot>,
    counted: bool,
}

impl Starting {
    pub fn new(slot: &Arc<FunctionSlot>) -> Self {
        slot.starting.fetch_add(1, Ordering::Relaxed);
        Self { slot: slot.clone(), counted: true }
    }

    fn done(&mut self) {
        if std::mem::take(&mut self.counted) {
            self.slot.starting.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        self.done();
    }
}

/// Runs one instance from start to end. The caller counts it in `alive`.
pub async fn run(mgr: Arc<FunctionManager>, slot: Arc<FunctionSlot>, mut starting: Starting) -> Ended {
    let id = slot.next_instance_id();
    let arn = slot.def.arn.clone();
    let limit = slot.def.memory_kb * 1024;
    slot.set_instance(InstanceStatus { id, pid: 0, state: "starting", started_unix: now_unix(), invocations: 0 });
    let started = match start_worker(&mgr, &slot, id, limit).await {
        Ok(s) => s,
        Err(reason) => {
            slot.remove_instance(id);
            return Ended::StartFailed(reason);
        }
    };
    let StartedWorker { pid, conn, cg_name, exit, direct, spec } = started;
    let cleanup = |slot: &FunctionSlot| {
        slot.remove_instance(id);
        mgr.memory.remove(&cg_name);
    };
    slot.set_instance(InstanceStatus { id, pid, state: "starting", started_unix: now_unix(), invocations: 0 });
    let (mut rd, mut wr) = conn.stream.into_split();
    if direct && wr.write_all(&ggcore_ipc::encode(&Down::Start { spec })).await.is_err() {
        kill(pid);
        cleanup(&slot);
        return Ended::StartFailed("the worker closed its connection".into());
    }

    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    let conn = Arc::new(Conn { tx, results: Mutex::new(HashMap::new()) });
    let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
    {
        let mgr = mgr.clone();
        let slot = slot.clone();
        let conn = conn.clone();
        let exit = exit.clone();
        tokio::spawn(async move {
            let mut ready_tx = Some(ready_tx);
            let calls = Arc::new(Semaphore::new(CONCURRENT_CALLS));
            loop {
                let body = match read_frame(&mut rd).await {
                    Ok(Some(b)) => b,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(function = %slot.def.arn, error = %e, "bad frame from a worker; stopping the instance");
                        break;
                    }
                };
                match ggcore_ipc::decode::<Up>(&body) {
                    Ok(Up::Ready) => {
                        if let Some(t) = ready_tx.take() {
                            let _ = t.send(Ok(()));
                        }
                    }
                    Ok(Up::StartFailed { message }) => {
                        if let Some(t) = ready_tx.take() {
                            let _ = t.send(Err(message));
                        }
                    }
                    Ok(Up::Result { id, outcome }) => {
                        let waiter = conn.results.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                        if let Some(w) = waiter {
                            let _ = w.send(outcome);
                        }
                    }
                    Ok(Up::Log { level, message }) => slot.log.write(log_level(level), &message),
                    Ok(Up::Call { corr, call }) => {
                        let Ok(permit) = calls.clone().acquire_owned().await else { break };
                        let mgr = mgr.clone();
                        let slot = slot.clone();
                        let conn = conn.clone();
                        // Publishes are answered in order, on this task; invokes may wait long.
                        if matches!(call, ggcore_ipc::Call::Publish { .. }) {
                            let reply = mgr.handle_call(&slot, call).await;
                            if corr != 0 {
                                let _ = conn.tx.send(ggcore_ipc::encode(&Down::Reply { corr, reply })).await;
                            } else if let ggcore_ipc::Reply::Error { message, .. } = reply {
                                slot.log.write("ERROR", &format!("publish failed: {message}"));
                            }
                            drop(permit);
                        } else {
                            tokio::spawn(async move {
                                let reply = mgr.handle_call(&slot, call).await;
                                let _ = conn.tx.send(ggcore_ipc::encode(&Down::Reply { corr, reply })).await;
                                drop(permit);
                            });
                        }
                    }
                    Ok(other) => tracing::warn!(function = %slot.def.arn, frame = ?other, "unexpected frame from a worker"),
                    Err(e) => {
                        tracing::warn!(function = %slot.def.arn, error = %e, "undecodable frame from a worker; stopping the instance");
                        break;
                    }
                }
            }
            // The connection is gone: the instance is over.
            exit.dead.cancel();
        });
    }

    let started = Instant::now();
    let start_limit = START_TIMEOUT + slot.def.timeout;
    // Err(Some(message)): the worker said why; Err(None): it ended without saying.
    let ready: Result<(), Option<String>> = tokio::select! {
        r = tokio::time::timeout(start_limit, ready_rx) => match r {
            Ok(Ok(r)) => r.map_err(Some),
            Ok(Err(_)) => Err(None),
            Err(_) => Err(Some(format!("the function did not finish starting within {} s", start_limit.as_secs()))),
        },
        _ = exit.dead.cancelled() => Err(None),
        _ = slot.removed.cancelled() => Err(Some("the function was removed while starting".to_string())),
    };
    if let Err(message) = ready {
        let reason = match message {
            Some(m) => m,
            None => death_reason(&mgr.memory, &cg_name, &exit, "the worker ended while starting").await,
        };
        kill(pid);
        cleanup(&slot);
        return Ended::StartFailed(reason);
    }
    tracing::debug!(function = %arn, pid, ms = started.elapsed().as_millis() as u64, "instance ready");
    slot.stats.instances_started.fetch_add(1, Ordering::Relaxed);
    starting.done();

    if matches!(*mgr.memory, MemoryControl::Watcher) {
        let exit = exit.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = exit.dead.cancelled() => return,
                    _ = tokio::time::sleep(WATCH_INTERVAL) => {}
                }
                if super::memory::private_bytes(pid).is_some_and(|b| b > limit) {
                    *exit.killed_for.lock().unwrap_or_else(|p| p.into_inner()) = Some("memory");
                    kill(pid);
                    return;
                }
            }
        });
    }

    let idle_timeout = match slot.def.lifecycle {
        Lifecycle::Pinned => None,
        Lifecycle::OnDemand => Some(mgr.idle_timeout),
    };
    let mut served = 0u64;
    let mut next_id = 1u64;
    // Invocations sent to the worker, in order. The worker runs them one at a
    // time in that order, so the first is the one running (since `head_since`)
    // and the others wait in its socket: the next one starts without a round
    // trip through the core.
    let mut sent: VecDeque<Sent> = VecDeque::new();
    let mut head_since = Instant::now();
    let ended = loop {
        // With nothing sent, wait for work; the first item starts the pipeline.
        let mut waited = None;
        if sent.is_empty() {
            slot.set_instance(InstanceStatus { id, pid, state: "idle", started_unix: now_unix(), invocations: served });
            let item = tokio::select! {
                w = slot.next(idle_timeout) => w,
                _ = exit.dead.cancelled() => break Ended::Died(death_reason(&mgr.memory, &cg_name, &exit, "the worker ended").await),
            };
            let Some(item) = item else {
                break if slot.removed.is_cancelled() { Ended::Removed } else { Ended::Idle };
            };
            waited = Some(item);
            head_since = Instant::now();
            slot.set_instance(InstanceStatus { id, pid, state: "busy", started_unix: now_unix(), invocations: served });
        }
        // Fill the pipeline from the queue, without waiting for more work.
        let mut send_failed = None;
        while sent.len() < pipeline_depth(&slot) {
            let Some(item) = waited.take().or_else(|| slot.try_next()) else { break };
            if let Err(item) = send_invoke(&slot, &conn, &mut next_id, item, &mut sent).await {
                send_failed = Some(item);
                break;
            }
        }
        if let Some(item) = send_failed {
            // It never reached the worker: another instance runs it. The
            // first of `sent`, if any, is the one that was running.
            slot.give_back(vec![item]);
            break died(&mgr, &slot, &cg_name, &exit, &mut sent).await;
        }
        let Some(head) = sent.front_mut() else { continue };
        let deadline = tokio::time::Instant::from_std(head_since + slot.def.timeout);
        let outcome = tokio::select! {
            // An answer already read wins over the end of the connection after it.
            biased;
            r = &mut head.result => r.ok(),
            _ = tokio::time::sleep_until(deadline) => {
                *exit.killed_for.lock().unwrap_or_else(|p| p.into_inner()) = Some("timeout");
                kill(pid);
                slot.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                let msg = format!("Task timed out after {:.2} seconds", slot.def.timeout.as_secs_f64());
                end_running(&slot, &mut sent, &msg, "; the instance was stopped");
                break Ended::Died(msg);
            }
            _ = exit.dead.cancelled() => None,
            _ = slot.removed.cancelled() => {
                kill(pid);
                let msg = "the function was stopped (removed or replaced by a deployment, or the core is stopping) during this invocation";
                end_running(&slot, &mut sent, msg, "");
                break Ended::Removed;
            }
        };
        let Some(outcome) = outcome else {
            break died(&mgr, &slot, &cg_name, &exit, &mut sent).await;
        };
        let Some(head) = sent.pop_front() else { continue };
        head_since = Instant::now();
        served += 1;
        head.item.answer(outcome_result(&slot, outcome));
    };
    // Stop the worker: ask, then insist.
    let _ = conn.tx.try_send(ggcore_ipc::encode(&Down::Stop));
    if tokio::time::timeout(Duration::from_secs(2), exit.dead.cancelled()).await.is_err() {
        kill(pid);
    }
    kill(pid);
    cleanup(&slot);
    ended
}

/// A worker process connected as the instance, not yet told to start unless
/// it was forked with its spec.
struct StartedWorker {
    pid: u32,
    conn: super::ipc::Connected,
    cg_name: String,
    exit: Arc<Exit>,
    /// The worker waits for `Down::Start` (spawned directly, or a spare).
    direct: bool,
    spec: ggcore_ipc::Spec,
}

/// Starts the worker of one instance: the plugin's spare when one is ready,
/// else a fork from the zygote, else a new process.
async fn start_worker(mgr: &Arc<FunctionManager>, slot: &Arc<FunctionSlot>, id: u64, limit: u64) -> Result<StartedWorker, String> {
    if let Some(spare) = mgr.take_spare(slot) {
        let limited = spare.cg_name.is_empty() || mgr.memory.set_limit(&spare.cg_name, limit);
        if limited {
            spare.sink.assign(slot);
            let spec = mgr.spec_for(slot, None);
            return Ok(StartedWorker { pid: spare.pid, conn: spare.conn, cg_name: spare.cg_name, exit: spare.exit, direct: true, spec });
        }
        kill(spare.pid);
        mgr.memory.remove(&spare.cg_name);
    }
    let arn = &slot.def.arn;
    // Unique in this core: two versions of a function (a redeploy) share
    // the name and count their instances from 1 each.
    let cg_name = format!("{}-{}", arn.name(), mgr.next_cgroup_id());
    let cgroup_procs = mgr.memory.create(&cg_name, Some(limit)).map(|p| p.display().to_string());
    let spec = mgr.spec_for(slot, cgroup_procs);
    let token = new_token();
    let connected = mgr.hub.expect(&token);
    let exit = Exit::new();
    let sink = LineSink::for_slot(slot);
    let fail = |reason: String| {
        mgr.hub.forget(&token);
        mgr.memory.remove(&cg_name);
        reason
    };

    let mut direct = false;
    let mut pid = 0u32;
    if let Some(z) = mgr.zygote_for(&slot.plugin, &slot.def.runtime).await {
        match new_pipes() {
            Ok(((out_r, out_w), (err_r, err_w))) => {
                forward_lines(sink.clone(), out_r, "INFO");
                forward_lines(sink.clone(), err_r, "ERROR");
                match z.fork(token.clone(), ForkKind::Instance(Box::new(spec.clone())), out_w, err_w).await {
                    Ok(p) => {
                        pid = p;
                        mgr.watch_pid(p, exit.clone());
                    }
                    Err(e) => tracing::warn!(function = %arn, error = %e, "zygote fork failed; starting the instance directly"),
                }
            }
            Err(e) => tracing::warn!(function = %arn, error = %e, "cannot make pipes for the instance"),
        }
    }
    if pid == 0 {
        direct = true;
        let mut cmd = tokio::process::Command::new(&mgr.worker);
        cmd.arg("instance").arg(&mgr.socket).arg(&token).arg(&slot.plugin.file);
        cmd.env_clear().stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| fail(format!("cannot start the worker {}: {e}", mgr.worker.display())))?;
        pid = child.id().unwrap_or(0);
        if let Some(o) = child.stdout.take() {
            forward_lines(sink.clone(), o, "INFO");
        }
        if let Some(e) = child.stderr.take() {
            forward_lines(sink.clone(), e, "ERROR");
        }
        let exit2 = exit.clone();
        tokio::spawn(async move {
            use std::os::unix::process::ExitStatusExt;
            let status = match child.wait().await {
                Ok(s) => s.code().unwrap_or_else(|| -s.signal().unwrap_or(9)),
                Err(_) => -9,
            };
            exit2.record(status);
        });
    }
    slot.set_instance(InstanceStatus { id, pid, state: "starting", started_unix: now_unix(), invocations: 0 });

    let conn = tokio::select! {
        r = tokio::time::timeout(CONNECT_TIMEOUT, connected) => r.ok().and_then(|r| r.ok()),
        _ = exit.dead.cancelled() => None,
    };
    let Some(conn) = conn.filter(|c| c.role == Role::Instance) else {
        kill(pid);
        let reason = death_reason(&mgr.memory, &cg_name, &exit, "the worker did not connect").await;
        return Err(fail(reason));
    };
    Ok(StartedWorker { pid, conn, cg_name, exit, direct, spec })
}

/// One invocation sent to the worker and not answered yet.
struct Sent {
    item: WorkItem,
    result: oneshot::Receiver<Outcome>,
}

/// Most invocations sent ahead to one instance: 4 where no other instance
/// could take them (pinned, or on-demand at its instance limit), else 1, so
/// that queued work still spreads over new instances.
const PIPELINE_DEPTH: usize = 4;

fn pipeline_depth(slot: &FunctionSlot) -> usize {
    if slot.def.lifecycle == Lifecycle::Pinned || slot.alive.load(Ordering::Relaxed) >= slot.max_instances {
        PIPELINE_DEPTH
    } else {
        1
    }
}

/// Sends `item` to the worker; gives it back when the connection is gone.
async fn send_invoke(
    slot: &FunctionSlot,
    conn: &Conn,
    next_id: &mut u64,
    item: WorkItem,
    sent: &mut VecDeque<Sent>,
) -> Result<(), WorkItem> {
    let frame_id = *next_id;
    *next_id += 1;
    slot.stats.invocations.fetch_add(1, Ordering::Relaxed);
    // The worker sets the deadline again when the invocation starts.
    let deadline_ms = crate::telemetry::now_ms() + slot.def.timeout.as_millis() as u64;
    let (tx, rx) = oneshot::channel();
    conn.results.lock().unwrap_or_else(|p| p.into_inner()).insert(frame_id, tx);
    let frame = ggcore_ipc::encode(&Down::Invoke {
        id: frame_id,
        event: item.event.to_vec(),
        context: Context {
            invocation_id: item.invocation_id.clone(),
            client_context: item.client_context.clone(),
            deadline_unix_ms: deadline_ms,
            event: item.is_event,
        },
    });
    if conn.tx.send(frame).await.is_err() {
        conn.results.lock().unwrap_or_else(|p| p.into_inner()).remove(&frame_id);
        return Err(item);
    }
    sent.push_back(Sent { item, result: rx });
    Ok(())
}

/// The worker died: the running invocation (the first of `sent`) gets an
/// Unhandled error with the reason, counted as a crash or out of memory; the
/// ones sent after it never started and go back to the queue.
async fn died(mgr: &FunctionManager, slot: &FunctionSlot, cg_name: &str, exit: &Exit, sent: &mut VecDeque<Sent>) -> Ended {
    let reason = death_reason(&mgr.memory, cg_name, exit, "the worker ended").await;
    if !sent.is_empty() {
        if reason.contains("out of memory") {
            slot.stats.out_of_memory.fetch_add(1, Ordering::Relaxed);
        } else {
            slot.stats.crashes.fetch_add(1, Ordering::Relaxed);
        }
    }
    end_running(slot, sent, &reason, "");
    Ended::Died(reason)
}

/// The running invocation (the first of `sent`) ends with an Unhandled error
/// `message` (logged with `note`); the ones sent after it never started and go
/// back to the queue.
fn end_running(slot: &FunctionSlot, sent: &mut VecDeque<Sent>, message: &str, note: &str) {
    if let Some(head) = sent.pop_front() {
        slot.stats.unhandled_errors.fetch_add(1, Ordering::Relaxed);
        slot.log.write("ERROR", &format!("invocation {} ended: {message}{note}", head.item.invocation_id));
        head.item.answer(InvokeResult::unhandled(message));
    }
    slot.give_back(sent.drain(..).map(|s| s.item).collect());
}

fn outcome_result(slot: &FunctionSlot, outcome: Outcome) -> InvokeResult {
    match outcome {
        Outcome::Ok(payload) => {
            slot.stats.succeeded.fetch_add(1, Ordering::Relaxed);
            InvokeResult { payload: Bytes::from(payload), failure: None }
        }
        Outcome::Err { unhandled, payload } => {
            let failure = if unhandled {
                slot.stats.unhandled_errors.fetch_add(1, Ordering::Relaxed);
                FunctionFailure::Unhandled
            } else {
                slot.stats.handled_errors.fetch_add(1, Ordering::Relaxed);
                FunctionFailure::Handled
            };
            InvokeResult { payload: Bytes::from(payload), failure: Some(failure) }
        }
    }
}

fn log_level(level: u8) -> &'static str {
    match level {
        0 => "DEBUG",
        1 => "INFO",
        2 => "WARN",
        3 => "ERROR",
        _ => "FATAL",
    }
}

/// Says why a worker ended: out of memory, timeout, signal or exit code.
async fn death_reason(memory: &MemoryControl, cg_name: &str, exit: &Exit, fallback: &str) -> String {
    // The exit status may arrive just after the connection closes.
    for _ in 0..20 {
        if exit.status.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let killed_for = *exit.killed_for.lock().unwrap_or_else(|p| p.into_inner());
    if killed_for == Some("memory") || memory.oom_killed(cg_name) {
        return "Function ran out of memory (over its MemorySize); the instance was stopped".to_string();
    }
    match *exit.status.lock().unwrap_or_else(|p| p.into_inner()) {
        Some(code) if code >= 0 => format!("Function process exited with code {code}"),
        Some(sig) => format!("Function process was killed by signal {}", -sig),
        None => fallback.to_string(),
    }
}

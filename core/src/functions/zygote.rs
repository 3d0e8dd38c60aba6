//! The core's handle on a zygote: one `ggcore-worker zygote` process per runtime
//! plugin, holding a prepared interpreter. A cold start sends it a Fork request
//! carrying the new instance's stdout/stderr pipes (SCM_RIGHTS); the zygote
//! answers with the child's pid and a pidfd for it, and the child connects
//! back with its own token.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use ggcore_ipc::{Down, Role, Spec, Up};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

use super::ipc::{new_token, IpcHub};
use super::process::{Exit, WorkerProcess};

/// A zygote must connect and prepare its runtime within this long.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Fork requests waiting to be sent.
const FORK_QUEUE: usize = 64;

/// Called with (pid, status) when a child of the zygote ends.
pub type ExitHook = Arc<dyn Fn(u32, i32) + Send + Sync>;

/// What to fork: an instance of a function, or a spare that waits for one.
pub enum ForkKind {
    Instance(Box<Spec>),
    Spare { cgroup_procs: Option<String> },
}

struct ForkRequest {
    token: String,
    kind: ForkKind,
    out: OwnedFd,
    err: OwnedFd,
    reply: oneshot::Sender<Forked>,
}

/// A zygote's answer to a fork: the child's process, or why there is none.
type Forked = Result<Arc<WorkerProcess>, String>;

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Forked>>>>;

pub struct Zygote {
    process: Arc<WorkerProcess>,
    exit: Arc<Exit>,
    requests: mpsc::SyncSender<ForkRequest>,
    alive: Arc<AtomicBool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Zygote {
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed) && !self.exit.dead.is_cancelled()
    }

    /// Starts a zygote for `plugin_file` and waits until its runtime is
    /// prepared. Its helper tasks are registered with `tracker` (each ends
    /// with the zygote process).
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        tracker: &TaskTracker,
        hub: &IpcHub,
        socket: &Path,
        worker: &Path,
        plugin_file: &Path,
        runtime: &str,
        sdk_dirs: &[String],
        on_exit: ExitHook,
    ) -> Result<Arc<Zygote>, String> {
        let token = new_token();
        let connected = hub.expect(&token);
        let mut cmd = tokio::process::Command::new(worker);
        cmd.arg("zygote").arg(socket).arg(&token).arg(plugin_file).arg(runtime).args(sdk_dirs);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            hub.forget(&token);
            format!("cannot start the zygote {}: {e}", worker.display())
        })?;
        let name = plugin_file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child.stderr.take().map(|s| Box::new(s) as _),
        ]
        .into_iter()
        .flatten()
        {
            let name = name.clone();
            tracker.spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    tracing::info!(zygote = %name, "{l}");
                }
            });
        }
        let exit = Exit::new();
        let process = WorkerProcess::spawned(child, exit.clone(), tracker);
        let pid = process.pid();
        let alive = Arc::new(AtomicBool::new(true));

        let conn = match tokio::time::timeout(READY_TIMEOUT, connected).await {
            Ok(Ok(c)) if c.role == Role::Zygote => c,
            _ => {
                hub.forget(&token);
                process.kill();
                return Err("the zygote did not connect".to_string());
            }
        };
        let mut stream = conn.stream;
        let first =
            tokio::time::timeout(READY_TIMEOUT, ggcore_ipc::FrameReader::new(ggcore_ipc::FrameLimits::up(0)).read_async(&mut stream)).await;
        match first.ok().and_then(|r| r.ok()).flatten().map(|b| ggcore_ipc::decode::<Up>(&b)) {
            Some(Ok(Up::ZygoteReady { .. })) => {}
            Some(Ok(Up::ZygoteFailed { message })) => {
                process.kill();
                return Err(message);
            }
            _ => {
                process.kill();
                return Err("the zygote did not report ready".to_string());
            }
        }
        let std_stream = stream.into_std().map_err(|e| e.to_string())?;
        std_stream.set_nonblocking(false).map_err(|e| e.to_string())?;
        let reader = std_stream.try_clone().map_err(|e| e.to_string())?;
        let pending: Pending = Arc::default();
        let (tx, rx) = mpsc::sync_channel::<ForkRequest>(FORK_QUEUE);
        // Threads, not tasks (blocking sendmsg/recvmsg with descriptors): the
        // reader ends when the zygote does, the writer when this handle is
        // dropped (at the latest when the core exits).
        {
            let pending = pending.clone();
            let alive = alive.clone();
            std::thread::Builder::new()
                .name("ggcore-zygote-rd".into())
                .spawn(move || read_loop(reader, pending, alive, on_exit))
                .map_err(|e| e.to_string())?;
        }
        {
            let pending = pending.clone();
            std::thread::Builder::new()
                .name("ggcore-zygote-wr".into())
                .spawn(move || write_loop(std_stream, rx, pending))
                .map_err(|e| e.to_string())?;
        }
        tracing::info!(plugin = %plugin_file.display(), runtime, pid, "zygote ready");
        Ok(Arc::new(Zygote { process, exit, requests: tx, alive }))
    }

    /// Forks an instance (or a spare); the child will connect with `token`.
    pub async fn fork(&self, token: String, kind: ForkKind, out: OwnedFd, err: OwnedFd) -> Forked {
        let (reply, rx) = oneshot::channel();
        self.requests.try_send(ForkRequest { token, kind, out, err, reply }).map_err(|_| "the zygote is busy or gone".to_string())?;
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(r)) => r,
            _ => Err("the zygote did not answer".to_string()),
        }
    }

    /// Kills the zygote and waits (up to `within`) until it has ended.
    pub async fn stop(&self, within: Duration) {
        if !self.process.kill_and_wait(within).await {
            tracing::warn!(pid = self.process.pid(), "the zygote did not end after SIGKILL");
        }
    }
}

fn read_loop(stream: StdUnixStream, pending: Pending, alive: Arc<AtomicBool>, on_exit: ExitHook) {
    let mut frames = ggcore_ipc::FrameReader::new(ggcore_ipc::FrameLimits::up(0));
    // Descriptors that came with frames: a pidfd with each `Forked`.
    let mut fds: VecDeque<OwnedFd> = VecDeque::new();
    while let Ok(Some(body)) = frames.read_with_fds(stream.as_fd(), &mut fds) {
        match ggcore_ipc::decode::<Up>(&body) {
            Ok(Up::Forked { token, pid }) => {
                let forked = match fds.pop_front() {
                    Some(pidfd) => Ok(WorkerProcess::forked(pid, pidfd)),
                    None => Err("the zygote sent no pidfd for its child".to_string()),
                };
                if let Some(tx) = lock(&pending).remove(&token) {
                    let _ = tx.send(forked);
                }
                // Anything else that came along is not ours to keep.
                fds.clear();
            }
            Ok(Up::ForkFailed { token, message }) => {
                if let Some(tx) = lock(&pending).remove(&token) {
                    let _ = tx.send(Err(message));
                }
            }
            Ok(Up::ChildExited { pid, status }) => on_exit(pid, status),
            Ok(other) => tracing::warn!(frame = ?other, "zygote sent an unexpected frame"),
            Err(e) => {
                tracing::warn!(error = %e, "zygote sent a bad frame; closing it");
                break;
            }
        }
    }
    alive.store(false, Ordering::Relaxed);
    for (_, tx) in lock(&pending).drain() {
        let _ = tx.send(Err("the zygote ended".to_string()));
    }
}

fn write_loop(mut stream: StdUnixStream, requests: mpsc::Receiver<ForkRequest>, pending: Pending) {
    while let Ok(req) = requests.recv() {
        let frame = match req.kind {
            ForkKind::Instance(spec) => ggcore_ipc::encode(&Down::Fork { token: req.token.clone(), spec: *spec }),
            ForkKind::Spare { cgroup_procs } => ggcore_ipc::encode(&Down::ForkSpare { token: req.token.clone(), cgroup_procs }),
        };
        lock(&pending).insert(req.token.clone(), req.reply);
        let result = ggcore_ipc::frame::write_with_fds(&mut stream, &frame, &[req.out.as_raw_fd(), req.err.as_raw_fd()]);
        // Our copies of the child's descriptors are no longer needed.
        drop((req.out, req.err));
        if let Err(e) = result {
            if let Some(tx) = lock(&pending).remove(&req.token) {
                let _ = tx.send(Err(format!("cannot reach the zygote: {e}")));
            }
            break;
        }
    }
}

//! The core's end of one instance's IPC connection: a writer task that sends
//! frames in order, and a reader task that answers what the worker sends
//! (readiness, results, log lines, SDK calls).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ggcore_ipc::{Down, FrameLimits, FrameReader, Outcome, Up};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::process::Exit;
use super::slot::FunctionSlot;
use super::FunctionManager;

/// Frames waiting to be written to one worker.
const WRITE_QUEUE: usize = 256;
/// Host calls of one instance handled at once (more wait: backpressure).
const CONCURRENT_CALLS: usize = 64;

/// The connection to a running worker.
pub(crate) struct Conn {
    pub(crate) tx: mpsc::Sender<Vec<u8>>,
    /// Who waits for the result of each invocation sent, by frame id.
    pub(crate) results: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
}

/// The worker's answer to starting: ready, or why not.
pub(crate) type ReadyRx = oneshot::Receiver<Result<(), String>>;

/// Serves the connection of instance `pid` of `slot`: returns the handle to
/// send on and the receiver of the worker's answer to starting. When the
/// connection ends, `exit.dead` is cancelled: the instance is over.
pub(crate) fn open(
    mgr: &Arc<FunctionManager>,
    slot: &Arc<FunctionSlot>,
    pid: u32,
    rd: OwnedReadHalf,
    mut wr: OwnedWriteHalf,
    exit: &Arc<Exit>,
) -> (Arc<Conn>, ReadyRx) {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    // Ends when the last sender (the `Conn`) is dropped or the worker is gone.
    mgr.tracker.spawn(async move {
        while let Some(frame) = rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    let conn = Arc::new(Conn { tx, results: Mutex::new(HashMap::new()) });
    let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
    // Ends when the worker's connection closes (it has ended).
    mgr.tracker.spawn(read_frames(mgr.clone(), slot.clone(), pid, rd, conn.clone(), ready_tx, exit.clone()));
    (conn, ready_rx)
}

/// Reads the worker's frames until the connection ends or a frame is bad.
async fn read_frames(
    mgr: Arc<FunctionManager>,
    slot: Arc<FunctionSlot>,
    pid: u32,
    rd: OwnedReadHalf,
    conn: Arc<Conn>,
    ready_tx: oneshot::Sender<Result<(), String>>,
    exit: Arc<Exit>,
) {
    let mut ready_tx = Some(ready_tx);
    let calls = Arc::new(Semaphore::new(CONCURRENT_CALLS));
    let mut rd = BufReader::new(rd);
    let mut frames = FrameReader::new(FrameLimits::up(mgr.cfg.max_payload));
    loop {
        let body = match frames.read_async(&mut rd).await {
            Ok(Some(b)) => b,
            Ok(None) => break,
            // Reset or closed: the worker is gone (why is told elsewhere).
            Err(ggcore_ipc::FrameError::Io(_)) => break,
            Err(e) => {
                tracing::warn!(function = %slot.def.arn, pid, error = %e, "bad frame from a worker; stopping the instance");
                slot.log.write("ERROR", &format!("the instance sent a bad frame to the core ({e}); it was stopped"));
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
                    // Ends when the call is answered (an invoke: when its
                    // target answers, fails or is stopped).
                    mgr.tracker.clone().spawn(async move {
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

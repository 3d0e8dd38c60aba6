//! The core's end of one instance's IPC connection: a writer task that sends
//! frames in order, a reader task that answers what the worker sends
//! (readiness, results, log lines, SDK calls), and a publisher task that
//! routes the function's publishes in order.
//!
//! Publishes are routed on their own task so that the reader goes on reading
//! (results above all) while a publish waits for room in a full target
//! queue. When too many publishes wait, the reader waits too, and with it
//! the function (its writes to the socket block): the time the core holds
//! the instance back this way is counted by its [`HoldClock`] and does not
//! count against the function's `Timeout`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ggcore_ipc::{Call, Down, FrameLimits, FrameReader, Outcome, Up};
use ggcore_plugin_abi::LogLevel;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::hold::HoldClock;
use super::process::Exit;
use super::slot::FunctionSlot;
use super::FunctionManager;

/// Frames waiting to be written to one worker.
const WRITE_QUEUE: usize = 256;
/// Host calls of one instance handled at once (more wait: backpressure).
const CONCURRENT_CALLS: usize = 64;
/// Publishes read from one worker and waiting to be routed; when full, the
/// reader waits (the instance is held back).
const PUBLISH_QUEUE: usize = 32;

/// The connection to a running worker.
pub(crate) struct Conn {
    pub(crate) tx: mpsc::Sender<Vec<u8>>,
    /// Who waits for the result of each invocation sent, by frame id.
    pub(crate) results: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
    /// Time the core has held this instance back.
    pub(crate) hold: HoldClock,
}

/// A publish from the function: its correlation id (0: no answer wanted).
type Publish = (u64, Call);

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
    let conn = Arc::new(Conn { tx, results: Mutex::new(HashMap::new()), hold: HoldClock::default() });
    let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
    let (publish_tx, publish_rx) = mpsc::channel::<Publish>(PUBLISH_QUEUE);
    // Ends when the reader ends and every publish read is routed.
    mgr.tracker.spawn(route_publishes(mgr.clone(), slot.clone(), conn.clone(), publish_rx));
    // Ends when the worker's connection closes (it has ended).
    mgr.tracker.spawn(read_frames(mgr.clone(), slot.clone(), pid, rd, conn.clone(), ready_tx, publish_tx, exit.clone()));
    (conn, ready_rx)
}

/// Routes the function's publishes in the order it made them, answering
/// those that want an answer. A publish to a full queue waits here (the
/// router holds it back); that time is counted as held.
async fn route_publishes(mgr: Arc<FunctionManager>, slot: Arc<FunctionSlot>, conn: Arc<Conn>, mut rx: mpsc::Receiver<Publish>) {
    while let Some((corr, call)) = rx.recv().await {
        let reply = {
            let _held = conn.hold.hold();
            mgr.handle_call(&slot, call).await
        };
        if corr != 0 {
            let _ = conn.tx.send(ggcore_ipc::encode(&Down::Reply { corr, reply })).await;
        } else if let ggcore_ipc::Reply::Error { message, .. } = reply {
            slot.log.write(LogLevel::Error, &format!("publish failed: {message}"));
        }
    }
}

/// Reads the worker's frames until the connection ends or a frame is bad.
#[allow(clippy::too_many_arguments)]
async fn read_frames(
    mgr: Arc<FunctionManager>,
    slot: Arc<FunctionSlot>,
    pid: u32,
    rd: OwnedReadHalf,
    conn: Arc<Conn>,
    ready_tx: oneshot::Sender<Result<(), String>>,
    publish_tx: mpsc::Sender<Publish>,
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
                slot.log.write(LogLevel::Error, &format!("the instance sent a bad frame to the core ({e}); it was stopped"));
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
            Ok(Up::Log { level, message }) => slot.log.write(LogLevel::from_u8(level), &message),
            Ok(Up::Call { corr, call: call @ Call::Publish { .. } }) => {
                // In order, on the publisher task; when it is behind, this
                // reader (and so the function) waits: a hold.
                let publish = match publish_tx.try_send((corr, call)) {
                    Ok(()) => continue,
                    Err(mpsc::error::TrySendError::Full(p)) => p,
                    Err(mpsc::error::TrySendError::Closed(_)) => break,
                };
                let _held = conn.hold.hold();
                if publish_tx.send(publish).await.is_err() {
                    break;
                }
            }
            Ok(Up::Call { corr, call }) => {
                let Ok(permit) = calls.clone().acquire_owned().await else { break };
                let mgr = mgr.clone();
                let slot = slot.clone();
                let conn = conn.clone();
                // Invokes may wait long: each on its own task, which ends
                // when the call is answered (an invoke: when its target
                // answers, fails or is stopped).
                mgr.tracker.clone().spawn(async move {
                    let reply = mgr.handle_call(&slot, call).await;
                    let _ = conn.tx.send(ggcore_ipc::encode(&Down::Reply { corr, reply })).await;
                    drop(permit);
                });
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

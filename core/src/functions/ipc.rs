//! The core's end of worker IPC: the listener on `ggc/socket/ipc.sock`, and
//! the tokens that tell which instance or zygote a connection belongs to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ggcore_ipc::{FrameLimits, FrameReader, Role, Up, PROTOCOL_VERSION};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A worker must say Hello within this long after connecting.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// A worker connection that presented an expected token.
#[derive(Debug)]
pub struct Connected {
    pub stream: UnixStream,
    pub role: Role,
    pub pid: u32,
}

#[derive(Default)]
pub struct IpcHub {
    waiting: Mutex<HashMap<String, oneshot::Sender<Connected>>>,
}

/// A new random token.
pub fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl IpcHub {
    /// Registers a token; the returned receiver gets its connection.
    pub fn expect(&self, token: &str) -> oneshot::Receiver<Connected> {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(token.to_string(), tx);
        rx
    }

    pub fn forget(&self, token: &str) {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(token);
    }

    /// Accepts worker connections until `stop`. Each connection's Hello is
    /// read by a task registered with `tracker` (bounded by [`HELLO_TIMEOUT`]).
    pub async fn serve(self: Arc<Self>, listener: UnixListener, stop: CancellationToken, tracker: TaskTracker) {
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = stop.cancelled() => break,
            };
            let Ok((mut stream, _)) = accepted else { continue };
            let hub = self.clone();
            tracker.spawn(async move {
                let hello = tokio::time::timeout(HELLO_TIMEOUT, FrameReader::new(FrameLimits::up(0)).read_async(&mut stream)).await;
                let body = match hello {
                    Ok(Ok(Some(b))) => b,
                    _ => {
                        tracing::warn!("worker IPC: a connection sent no Hello; closed");
                        return;
                    }
                };
                match ggcore_ipc::decode::<Up>(&body) {
                    Ok(Up::Hello { protocol, token, role, pid }) => {
                        if protocol != PROTOCOL_VERSION {
                            tracing::warn!(pid, protocol, expected = PROTOCOL_VERSION, "worker IPC: protocol version mismatch; closed");
                            return;
                        }
                        let tx = hub.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&token);
                        match tx {
                            Some(tx) => {
                                let _ = tx.send(Connected { stream, role, pid });
                            }
                            None => tracing::warn!(pid, "worker IPC: unknown or reused token; closed"),
                        }
                    }
                    Ok(_) => tracing::warn!("worker IPC: first frame is not Hello; closed"),
                    Err(e) => tracing::warn!(error = %e, "worker IPC: bad Hello; closed"),
                }
            });
        }
    }
}

//! The admin socket (`ROOT/ggc/socket/admin.sock`): how `ggcore deploy`,
//! `status` and friends talk to a running core. One JSON request line, one JSON
//! response line. Only root or the core's own user may connect (SO_PEERCRED).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::group::Problem;

/// Largest request accepted (a group with inline definitions).
const MAX_REQUEST_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Request {
    /// Deploy a group. `text` is group.json; `base_dir` anchors relative `Code` paths.
    Deploy {
        file: String,
        text: String,
        base_dir: PathBuf,
    },
    Reset {
        force: bool,
    },
    Status,
    /// A shadow request (`ggcore shadow`): `op` get, update or delete.
    Shadow {
        action: String,
        thing: String,
        #[serde(default)]
        payload: String,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub ok: bool,
    /// Exit code the CLI should use on failure (2: invalid input, 1: other).
    #[serde(default)]
    pub code: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Problem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

impl Response {
    pub fn ok(body: serde_json::Value) -> Self {
        Self { ok: true, body: Some(body), ..Self::default() }
    }

    pub fn error(code: u8, message: impl Into<String>) -> Self {
        Self { ok: false, code, error: Some(message.into()), ..Self::default() }
    }
}

/// Answers requests. Implemented by the running core.
pub trait Handler: Send + Sync + 'static {
    fn handle(self: Arc<Self>, req: Request) -> impl std::future::Future<Output = Response> + Send;
}

/// Creates the socket directory (0700) and binds the admin socket, replacing a
/// stale socket file (the caller holds the root lock, so no other core uses it).
pub fn bind(socket: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = UnixListener::bind(socket)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Serves admin requests until `accepting` is cancelled. Each request is
/// handled by a task registered with `tracker`; one still waiting when
/// `closing` is cancelled is answered that the core is stopping.
pub async fn serve<H: Handler>(
    listener: UnixListener,
    handler: Arc<H>,
    accepting: CancellationToken,
    closing: CancellationToken,
    tracker: TaskTracker,
) {
    let own_uid = nix::unistd::geteuid().as_raw();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = accepting.cancelled() => break,
        };
        let Ok((stream, _)) = accepted else { continue };
        match stream.peer_cred() {
            Ok(c) if c.uid() == 0 || c.uid() == own_uid => {}
            Ok(c) => {
                tracing::warn!(uid = c.uid(), "admin socket: refused a client that is neither root nor the core's user");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin socket: cannot read the client's credentials; refused");
                continue;
            }
        }
        let handler = handler.clone();
        let closing = closing.clone();
        tracker.spawn(async move {
            let (rd, mut wr) = stream.into_split();
            let mut line = String::new();
            let mut rd = BufReader::new(rd.take(MAX_REQUEST_BYTES));
            let answer = async {
                match rd.read_line(&mut line).await {
                    Ok(_) => match serde_json::from_str::<Request>(&line) {
                        Ok(req) => handler.handle(req).await,
                        Err(e) => Response::error(2, format!("bad admin request: {e}")),
                    },
                    Err(e) => Response::error(1, format!("reading the admin request: {e}")),
                }
            };
            let resp = tokio::select! {
                r = answer => r,
                _ = closing.cancelled() => Response::error(1, "the core is stopping"),
            };
            let mut out = serde_json::to_vec(&resp).unwrap_or_else(|_| b"{\"ok\":false,\"code\":1}".to_vec());
            out.push(b'\n');
            let _ = wr.write_all(&out).await;
        });
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers on the socket: no core runs on this root.
    #[error("no ggcore is running on this root ({0} does not answer)")]
    NotRunning(PathBuf),
    #[error("admin socket {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("admin socket {0}: bad response: {1}")]
    BadResponse(PathBuf, String),
}

/// Sends one request to a running core.
pub async fn call(socket: &Path, req: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let io = |e| ClientError::Io(socket.to_path_buf(), e);
    let stream = match UnixStream::connect(socket).await {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
            return Err(ClientError::NotRunning(socket.to_path_buf()))
        }
        Err(e) => return Err(io(e)),
    };
    let (rd, mut wr) = stream.into_split();
    let mut body = serde_json::to_vec(req).map_err(|e| ClientError::BadResponse(socket.to_path_buf(), e.to_string()))?;
    body.push(b'\n');
    wr.write_all(&body).await.map_err(io)?;
    let mut line = String::new();
    let mut rd = BufReader::new(rd);
    match tokio::time::timeout(timeout, rd.read_line(&mut line)).await {
        Ok(Ok(0)) => Err(ClientError::BadResponse(socket.to_path_buf(), "the core closed the connection".to_string())),
        Ok(Ok(_)) => serde_json::from_str(&line).map_err(|e| ClientError::BadResponse(socket.to_path_buf(), e.to_string())),
        Ok(Err(e)) => Err(io(e)),
        Err(_) => Err(ClientError::BadResponse(socket.to_path_buf(), format!("no answer within {} s", timeout.as_secs()))),
    }
}

//! A connection's writer: drains the device's session to the socket in
//! batches (control packets, due retries, then queued messages within the
//! QoS 1 window), one TLS write per batch. It also ends the connection of a
//! device that stalls: its queue full and no progress for the session's stall
//! timeout (docs/mqtt.md, "Flow control"); the session is kept.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::hub::Session;

/// Most messages the writer encodes before writing to the socket.
const WRITE_BATCH: usize = 512;
/// How often a write that does not finish looks at the session's stall state.
const STALL_POLL: Duration = Duration::from_secs(1);
/// How long a closing connection may take to send its last answers.
const LAST_ANSWERS: Duration = Duration::from_millis(500);
/// The write buffer is given back to the allocator when it grew past this.
const KEEP_BUFFER: usize = 1024 * 1024;

/// Why the writer stopped.
#[derive(Debug)]
pub enum WriterEnd {
    /// The connection was closed by someone else (reader, shutdown, takeover).
    Cancelled,
    /// The device stalled: its queue stayed full without progress.
    Stalled { pending: usize, stalled_for: Duration },
    /// Writing to the socket failed.
    Failed(std::io::Error),
}

/// Drains `session` to `wr` until `cancel` fires, the socket fails or the
/// device stalls (then `cancel` is fired for the reader too). Awaited by the
/// connection task that spawned it, so its lifetime is bounded by that
/// (tracked) task.
pub async fn write_loop<W: AsyncWrite + Unpin>(session: Arc<Session>, mut wr: W, cancel: CancellationToken) -> WriterEnd {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let end = loop {
        if cancel.is_cancelled() {
            send_last_answers(&session, &mut wr).await;
            break WriterEnd::Cancelled;
        }
        let (more, retry_at, stall_at, room) = {
            let mut st = session.state();
            st.drain_into(&mut buf, Instant::now(), WRITE_BATCH);
            (st.has_work(), st.next_retry(), st.stall_deadline(), st.take_room_signal())
        };
        if room {
            session.room.notify_waiters();
        }
        if !buf.is_empty() {
            if let Err(end) = write_all(&session, &mut wr, &buf, stall_at, &cancel).await {
                break end;
            }
            if buf.capacity() > KEEP_BUFFER {
                buf = BytesMut::with_capacity(64 * 1024);
            } else {
                buf.clear();
            }
        }
        if more {
            continue;
        }
        let wake_at = match (retry_at, stall_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep = async {
            match wake_at {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => continue,
            _ = session.wake.notified() => {}
            _ = sleep => {}
        }
        if stall_at.is_some_and(|t| Instant::now() >= t) {
            if let Some(end) = stalled(&session) {
                break end;
            }
        }
    };
    cancel.cancel();
    end
}

/// Sends the answers (PUBACK, SUBACK, PINGRESP...) due for the last packets
/// the device sent before its connection ended — a DISCONNECT or a protocol
/// error read together with them — within [`LAST_ANSWERS`] at most.
async fn send_last_answers<W: AsyncWrite + Unpin>(session: &Session, wr: &mut W) {
    let answers = session.state().take_control();
    if !answers.is_empty() {
        let _ = tokio::time::timeout(LAST_ANSWERS, async {
            wr.write_all(&answers).await?;
            wr.flush().await
        })
        .await;
    }
}

/// Writes `buf` whole, watching the stall deadline meanwhile (a device that
/// stopped reading blocks the write).
async fn write_all<W: AsyncWrite + Unpin>(
    session: &Session,
    wr: &mut W,
    buf: &[u8],
    mut stall_at: Option<Instant>,
    cancel: &CancellationToken,
) -> Result<(), WriterEnd> {
    let write = async {
        wr.write_all(buf).await?;
        wr.flush().await
    };
    tokio::pin!(write);
    loop {
        // A write that does not finish may be a device that stopped reading:
        // look again at its stall deadline (or, while it has none, every
        // STALL_POLL, as its queue may fill meanwhile).
        let check_at = stall_at.unwrap_or_else(|| Instant::now() + STALL_POLL);
        let sleep = tokio::time::sleep_until(check_at.into());
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(WriterEnd::Cancelled),
            r = &mut write => return r.map_err(WriterEnd::Failed),
            _ = sleep => {
                if let Some(end) = stalled(session) {
                    return Err(end);
                }
                stall_at = session.state().stall_deadline();
            }
        }
    }
}

/// `Some` when the device has been stalled for its stall timeout.
fn stalled(session: &Session) -> Option<WriterEnd> {
    let st = session.state();
    let since = st.stalled_since()?;
    let stalled_for = since.elapsed();
    (stalled_for >= st.limits().stall_timeout).then(|| WriterEnd::Stalled { pending: st.pending(), stalled_for })
}

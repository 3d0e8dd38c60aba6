//! The local MQTT server: MQTT 3.1.1 over TLS (tokio-rustls), packets encoded
//! and decoded by rumqttc's v4 codec, one task per connection (plus its writer),
//! bounded buffers everywhere. See docs/adr/0001-mqtt-server.md.

pub mod connection;
pub mod hub;
pub(crate) mod packet;
pub mod reader;
pub mod session;
pub mod tls;
pub mod validate;
pub mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use hub::DeviceHub;

use crate::router::Router;

/// Most simultaneous device connections; further ones are closed at accept.
pub const MAX_CONNECTIONS: usize = 10_000;

/// What every connection task shares.
pub struct BrokerCtx {
    pub router: Arc<Router>,
    pub hub: Arc<DeviceHub>,
    pub acceptor: TlsAcceptor,
    pub max_payload: usize,
    /// The core's own thing name, which may not connect locally.
    pub core_thing: Option<String>,
    /// Cancelled when the core starts stopping: devices' new packets are no
    /// longer acted on (docs/mqtt.md, "When the core stops").
    pub stopping: CancellationToken,
    /// Cancelled when connections close (the last step of stopping).
    pub shutdown: CancellationToken,
}

/// Binds the server; connections are served until `ctx.shutdown` fires.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Accepts connections until `accepting` is cancelled, then, once
/// `ctx.shutdown` closes the connections, makes sure every session is
/// kicked. Each connection runs in its own task, registered with `tracker`.
pub async fn serve(listener: TcpListener, ctx: Arc<BrokerCtx>, tracker: TaskTracker, accepting: CancellationToken) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = accepting.cancelled() => break,
            _ = ctx.shutdown.cancelled() => break,
        };
        match accepted {
            Ok((tcp, peer)) => {
                backoff = Duration::from_millis(10);
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, max = MAX_CONNECTIONS, "too many connections; refused");
                    continue;
                };
                let ctx = ctx.clone();
                tracker.spawn(async move {
                    connection::serve(ctx, tcp, peer).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    drop(listener);
    ctx.shutdown.cancelled().await;
    ctx.hub.kick_all();
}

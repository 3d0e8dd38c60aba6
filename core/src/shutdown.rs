//! Stopping `ggcore run` (SIGTERM or SIGINT), in one order, kept here:
//!
//! 1. **Stop accepting**: the MQTT listener, the admin socket and the worker
//!    socket take no new connections, certificate renewal ends, and no new
//!    function instance, spare or zygote starts.
//! 2. **Grace period** ([`SHUTDOWN_GRACE`]): running invocations, and work
//!    queued for functions that have an instance to run it, go on, and a
//!    deployment in progress finishes. Devices stay connected, so that what
//!    the functions publish meanwhile still reaches them; what devices
//!    publish is neither routed nor acknowledged (they keep QoS 1 messages
//!    for the next core: docs/mqtt.md, "When the core stops"). The period ends as
//!    soon as no such work is left.
//! 3. **Functions stop**: work still queued is answered with an error,
//!    invocations still running are ended, and every worker, spare and
//!    zygote process is stopped and waited for.
//! 4. **Connections close**: devices are disconnected (their wills are not
//!    sent), admin requests still waiting are answered; every task ends.
//!    The cloud link says DISCONNECT and stops.
//! 5. **The queue is persisted**: messages taken for the cloud and not yet
//!    written are written and the write-ahead log synced; no more are taken.
//! 6. **The state store closes** (RocksDB writes what it holds in memory).
//! 7. **Sockets and memory cgroups are removed.**
//!
//! Every task the core spawns is registered with the [`Shutdown`]'s tracker
//! or the function manager's, or (said where it is spawned) is awaited by a
//! task that is.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::daemon::Core;
use crate::store::StateStore;

/// How long in-flight work may go on after a stop is asked for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long connections and the remaining tasks may take to end once closed.
const CLOSE_WITHIN: Duration = Duration::from_secs(3);

/// The stop signal of every part of the core, and the tracker of its tasks.
pub struct Shutdown {
    accepting: CancellationToken,
    closing: CancellationToken,
    tracker: TaskTracker,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Self { accepting: CancellationToken::new(), closing: CancellationToken::new(), tracker: TaskTracker::new() }
    }

    /// Cancelled when the core stops accepting (step 1): listeners and
    /// background work end.
    pub fn accepting(&self) -> CancellationToken {
        self.accepting.clone()
    }

    /// Cancelled when connections close (step 4).
    pub fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }

    /// Where the core's tasks (other than the function manager's) register.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Stops the core, in the order above.
    pub async fn run(self, core: Arc<Core>, store: Arc<dyn StateStore>) {
        // 1. Stop accepting.
        tracing::info!(
            grace_s = SHUTDOWN_GRACE.as_secs(),
            "stopping: no new connections (MQTT, admin, workers) and no new function instances; in-flight work may finish"
        );
        self.accepting.cancel();
        core.functions.begin_draining();

        // 2. The grace period: a deployment in progress, then running work.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        // Held to the end: no deployment starts while the core stops.
        let no_more_deployments = tokio::time::timeout_at(deadline, core.deploy_lock.lock()).await;
        if no_more_deployments.is_err() {
            tracing::warn!("a deployment was still in progress at the end of the grace period");
        }
        match core.functions.drain(deadline).await {
            0 => tracing::info!("no function work in flight"),
            left => tracing::warn!(invocations = left, "function work still in flight after the grace period; ending it"),
        }

        // 3. Functions.
        core.functions.stop_all().await;
        tracing::info!("functions stopped");

        // 4. Connections, and every remaining task.
        self.closing.cancel();
        self.tracker.close();
        if tokio::time::timeout(CLOSE_WITHIN, self.tracker.wait()).await.is_err() {
            tracing::warn!(tasks = self.tracker.len(), "some connections or tasks did not end in time");
        }
        tracing::info!("connections closed");

        // 5. The shadow service: what it took is answered and stored.
        let shadows = core.shadows.clone();
        if tokio::task::spawn_blocking(move || shadows.stop()).await.is_err() {
            tracing::error!("stopping the shadow service failed");
        }

        // 6. The queue.
        let cloud = core.cloud.clone();
        if tokio::task::spawn_blocking(move || cloud.spool.close()).await.is_err() {
            tracing::error!("persisting the queue failed");
        }

        // 7. The state store: closed when the last holder lets go.
        let sockets: Vec<PathBuf> = vec![core.layout.admin_socket(), core.functions.socket_path().to_path_buf()];
        let functions = core.functions.clone();
        drop(no_more_deployments);
        drop(core);
        if Arc::strong_count(&store) == 1 {
            drop(store);
            tracing::info!("state store closed");
        } else {
            tracing::warn!("the state store is still in use; it closes when the process exits");
        }

        // 8. Sockets and memory cgroups.
        for s in sockets {
            match std::fs::remove_file(&s) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(socket = %s.display(), error = %e, "cannot remove a socket"),
            }
        }
        functions.cleanup().await;
    }
}

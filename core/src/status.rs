//! `ggcore status`: the running core's state as one JSON document (the
//! deployment, the group, devices, functions, plugins and counters).

use crate::daemon::Core;

impl Core {
    /// The status document the admin socket answers with.
    pub fn status(&self) -> serde_json::Value {
        use std::sync::atomic::Ordering::Relaxed;
        let table = self.router.table();
        let rs = &self.router.stats;
        let bs = &self.hub.stats;
        let (cloud, queue) = self.cloud.status();
        let (connected, offline): (Vec<_>, Vec<_>) = self.hub.sessions().into_iter().partition(|d| d.peer.is_some());
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "root": self.layout.root.display().to_string(),
            "uptimeSeconds": self.started.elapsed().as_secs(),
            "mqtt": self.mqtt_addr.to_string(),
            "deployment": self.record(),
            "group": {
                "groupId": table.group.group_id,
                "devices": table.group.devices.len(),
                "functions": table.group.functions.len(),
                "subscriptions": table.subscription_count(),
            },
            "devices": {
                "connected": connected.len(),
                "sessions": connected.len() + offline.len(),
                "droppedOffline": connected.iter().chain(&offline).map(|d| d.dropped).sum::<u64>(),
                "list": connected,
                "offline": offline,
            },
            "functions": self.functions.status(),
            "memoryLimits": self.functions.memory_mechanism(),
            "plugins": self.registry().plugins.iter().map(|p| serde_json::json!({"name": p.name, "file": p.file, "status": p.status()})).collect::<Vec<_>>(),
            "router": {
                "received": rs.received.load(Relaxed),
                "unrouted": rs.unrouted.load(Relaxed),
                "delivered": rs.delivered.load(Relaxed),
                "dropped": rs.dropped.load(Relaxed),
                "refused": rs.refused.load(Relaxed),
                "notSubscribed": rs.not_subscribed.load(Relaxed),
                "heldBack": rs.held.load(Relaxed),
            },
            "broker": {
                "connectionsAccepted": bs.connections_accepted.load(Relaxed),
                "connectionsRefused": bs.connections_refused.load(Relaxed),
                "tlsFailures": bs.tls_failures.load(Relaxed),
                "protocolErrors": bs.protocol_errors.load(Relaxed),
                "oversizedPayloads": bs.oversized_payloads.load(Relaxed),
                "takeovers": bs.takeovers.load(Relaxed),
                "stalledDevices": bs.stalled_devices.load(Relaxed),
            },
            "queue": queue,
            "cloud": cloud,
            "services": self.services.status(),
        })
    }
}

//! The cloud: the router's `cloud` target (the store-and-forward queue) and
//! source (the upstream subscriptions), and the link that joins them to the
//! cloud's MQTT broker. See docs/queue.md.

pub mod link;
pub mod spool;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{CoreConfig, Fsync, WhenFull as SpoolWhenFull};
use crate::group::{Endpoint, Group, SpoolerStorage};
use crate::router::{Deliver, Delivery, Message, Qos, Router, WhenFull};
use crate::store::StateStore;
use link::{LinkConfig, LinkState, LinkStatus};
use spool::{Appended, Spool, SpoolSettings, Storage};

/// Messages in flight upstream at most (sent, PUBACK not yet received).
pub const DEFAULT_WINDOW: u16 = 64;
/// Messages from the cloud waiting for the router.
const INBOUND_QUEUE: usize = 1024;
/// Volatile messages waiting for the link.
const VOLATILE_QUEUE: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("coreThing.{field}: {message}")]
    Config { field: &'static str, message: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The cloud as the router sees it, and the link's handles.
pub struct Cloud {
    pub spool: Arc<Spool>,
    pub link: Arc<LinkStatus>,
    link_config: Option<LinkConfig>,
    subscriptions: watch::Sender<Vec<String>>,
    base: SpoolSettings,
    /// Each source's name, made once (queued messages share it).
    sources: std::sync::RwLock<std::collections::HashMap<Endpoint, Arc<str>>>,
    /// Upstream filters: the group's `Source: cloud` subjects, and each
    /// service's own (the shadow sync's reply topics).
    filters: std::sync::Mutex<Filters>,
    /// Sees every message from the cloud before it is routed (the shadow sync).
    tap: std::sync::OnceLock<Tap>,
    /// QoS 0 messages outside the queue (see [`link::Volatile`]), and their
    /// receiver until the link takes it.
    volatile: mpsc::Sender<link::Volatile>,
    volatile_rx: std::sync::Mutex<Option<mpsc::Receiver<link::Volatile>>>,
}

/// A service's look at what the cloud sends: topic and payload. `true`: the
/// message was the service's (it is routed only if the group asks for it too).
pub type Tap = Box<dyn Fn(&str, &bytes::Bytes) -> bool + Send + Sync>;

#[derive(Default)]
struct Filters {
    group: Vec<String>,
    services: std::collections::BTreeMap<&'static str, Vec<String>>,
}

/// The queue settings of `config.json` (`ggcore.spooler`).
pub fn config_settings(config: &CoreConfig) -> SpoolSettings {
    let s = &config.spooler;
    SpoolSettings {
        storage: if s.file_system { Storage::FileSystem } else { Storage::Memory },
        max_bytes: s.max_size_bytes,
        fsync: s.fsync,
        when_full: s.when_full,
    }
}

/// The settings in force for `group`: its `GGCloudSpooler` function's
/// storage and size, when it has one, over `base`.
pub fn group_settings(base: SpoolSettings, group: &Group) -> SpoolSettings {
    match &group.spooler {
        Some(s) => SpoolSettings {
            storage: match s.storage {
                SpoolerStorage::Memory => Storage::Memory,
                SpoolerStorage::FileSystem => Storage::FileSystem,
            },
            max_bytes: s.max_size_bytes,
            ..base
        },
        None => base,
    }
}

/// The link's TLS client configuration: the cloud's root CA (`caPath`) and
/// the core's certificate and key (`certPath`, `keyPath`).
fn client_tls(config: &CoreConfig) -> Result<Arc<rustls::ClientConfig>, CloudError> {
    let ct = &config.core_thing;
    let need = |field: &'static str, p: &Option<std::path::PathBuf>| {
        p.clone().ok_or_else(|| CloudError::Config { field, message: "is needed for the cloud link (coreThing.iotHost is set)".into() })
    };
    let (ca, cert, key) = (need("caPath", &ct.ca_path)?, need("certPath", &ct.cert_path)?, need("keyPath", &ct.key_path)?);
    let bad = |field: &'static str, e: &dyn std::fmt::Display| CloudError::Config { field, message: e.to_string() };
    let mut roots = rustls::RootCertStore::empty();
    for c in crate::certs::load_certs(&ca).map_err(|e| bad("caPath", &e))? {
        roots.add(c).map_err(|e| bad("caPath", &format!("{}: {e}", ca.display())))?;
    }
    let chain = crate::certs::load_certs(&cert).map_err(|e| bad("certPath", &e))?;
    let key_der = crate::certs::load_key(&key).map_err(|e| bad("keyPath", &e))?;
    let tls = rustls::ClientConfig::builder_with_provider(crate::broker::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("caPath", &e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key_der)
        .map_err(|e| bad("certPath", &format!("cannot use {} with the key {}: {e}", cert.display(), key.display())))?;
    Ok(Arc::new(tls))
}

impl Cloud {
    /// Opens the queue (with the state store, so that `FileSystem` storage
    /// persists) and checks the link's configuration.
    pub fn open(config: &CoreConfig, store: Arc<dyn StateStore>) -> Result<Arc<Cloud>, CloudError> {
        let base = config_settings(config);
        let spool = Spool::open(Some(store), base)?;
        let ct = &config.core_thing;
        let (link_config, status) = match (&ct.iot_host, config.cloud_enabled) {
            (None, _) => (None, LinkStatus::new(LinkState::Disabled, Some("coreThing.iotHost is not set".into()))),
            (Some(_), false) => (None, LinkStatus::new(LinkState::Disabled, Some("ggcore.cloud.enabled is false".into()))),
            (Some(host), true) => {
                let client_id = config
                    .core_thing_name()
                    .ok_or_else(|| CloudError::Config {
                        field: "thingArn",
                        message: "is needed for the cloud link: its thing name is the client id".into(),
                    })?
                    .to_string();
                let tls = if config.cloud_tls { Some(client_tls(config)?) } else { None };
                let cfg = LinkConfig {
                    host: host.clone(),
                    port: ct.iot_mqtt_port,
                    client_id,
                    keep_alive: ct.keep_alive,
                    max_retry: ct.mqtt_max_connection_retry_interval,
                    tls,
                    window: DEFAULT_WINDOW,
                    max_incoming: config.mqtt.max_payload_bytes + crate::broker::packet::FRAMING_ALLOWANCE,
                };
                (Some(cfg), LinkStatus::new(LinkState::Connecting, None))
            }
        };
        let (volatile, volatile_rx) = mpsc::channel(VOLATILE_QUEUE);
        Ok(Arc::new(Cloud {
            volatile,
            volatile_rx: std::sync::Mutex::new(Some(volatile_rx)),
            spool,
            link: Arc::new(status),
            link_config,
            subscriptions: watch::Sender::new(Vec::new()),
            base,
            sources: Default::default(),
            filters: Default::default(),
            tap: Default::default(),
        }))
    }

    /// Applies a group: its queue settings and its upstream subscriptions.
    pub fn apply(&self, group: &Group) {
        self.spool.configure(group_settings(self.base, group));
        let filters = group.subscriptions.iter().filter(|s| s.source == Endpoint::Cloud).map(|s| s.subject.as_str().to_string()).collect();
        self.filters.lock().unwrap_or_else(|p| p.into_inner()).group = filters;
        self.resubscribe();
    }

    /// Sets the upstream filters a service needs besides the group's.
    pub fn set_service_filters(&self, service: &'static str, filters: Vec<String>) {
        self.filters.lock().unwrap_or_else(|p| p.into_inner()).services.insert(service, filters);
        self.resubscribe();
    }

    /// Lets a service see every message from the cloud (once, at start).
    pub fn set_tap(&self, tap: Tap) {
        if self.tap.set(tap).is_err() {
            tracing::error!("a cloud tap is already set");
        }
    }

    /// Sends `payload` on `topic` at QoS 0 on the connection of the moment,
    /// outside the queue, if that happens before `deadline`; why not when it
    /// cannot even be handed over (the caller tries again later).
    pub fn send_volatile(&self, topic: String, payload: bytes::Bytes, deadline: tokio::time::Instant) -> Result<(), &'static str> {
        if !self.connected() {
            return Err("the cloud link is not connected");
        }
        self.volatile
            .try_send(link::Volatile { topic, payload, deadline })
            .map_err(|_| "the cloud link has too many requests waiting to be sent")
    }

    /// Whether the link is connected now.
    pub fn connected(&self) -> bool {
        self.link.shown().state == LinkState::Connected
    }

    /// Whether the link is configured at all.
    pub fn enabled(&self) -> bool {
        self.link_config.is_some()
    }

    fn group_wants(&self, topic: &str) -> bool {
        let f = self.filters.lock().unwrap_or_else(|p| p.into_inner());
        f.group.iter().any(|g| crate::topic::TopicFilter::new(g).is_ok_and(|g| g.matches(topic)))
    }

    fn resubscribe(&self) {
        let mut filters: Vec<String> = {
            let f = self.filters.lock().unwrap_or_else(|p| p.into_inner());
            f.group.iter().chain(f.services.values().flatten()).cloned().collect()
        };
        filters.sort();
        filters.dedup();
        self.subscriptions.send_if_modified(|current| {
            let changed = *current != filters;
            *current = filters;
            changed
        });
    }

    /// Starts the link (when configured) and the task that routes what the
    /// cloud sends. Both end when `stop` is cancelled.
    pub fn start(self: &Arc<Self>, router: Arc<Router>, tracker: &TaskTracker, stop: CancellationToken) {
        let Some(cfg) = self.link_config.clone() else {
            let shown = self.link.shown();
            tracing::info!(reason = shown.last_error.as_deref().unwrap_or(""), "cloud link disabled; messages to the cloud are queued");
            return;
        };
        let (tx, mut rx) = mpsc::channel::<link::Inbound>(INBOUND_QUEUE);
        let stop_routing = stop.clone();
        let this = self.clone();
        tracker.spawn(async move {
            let tap = &this.tap;
            let mut scratch = Vec::new();
            loop {
                let p = tokio::select! {
                    p = rx.recv() => match p { Some(p) => p, None => break },
                    _ = stop_routing.cancelled() => break,
                };
                let qos = if p.qos == rumqttc::QoS::AtMostOnce { Qos::AtMostOnce } else { Qos::AtLeastOnce };
                if tap.get().is_some_and(|tap| tap(&p.topic, &p.payload)) && !this.group_wants(&p.topic) {
                    continue;
                }
                let msg = Message { topic: Arc::from(p.topic.as_str()), payload: p.payload, qos };
                tokio::select! {
                    _ = router.route_held(&Endpoint::Cloud, &msg, &mut scratch) => {}
                    _ = stop_routing.cancelled() => break,
                }
            }
        });
        let Some(volatile) = self.volatile_rx.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            tracing::error!("the cloud link was started twice");
            return;
        };
        tracker.spawn(link::run(cfg, self.spool.clone(), self.link.clone(), self.subscriptions.subscribe(), volatile, tx, stop));
    }

    /// The `cloud` and `queue` parts of `ggcore status`.
    pub fn status(&self) -> (serde_json::Value, serde_json::Value) {
        let l = &self.link;
        let shown = l.shown();
        let retry = shown.retry_at.map(|t| t.saturating_duration_since(tokio::time::Instant::now()).as_secs_f64());
        let since = shown.since.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let cfg = self.link_config.as_ref();
        let cloud = serde_json::json!({
            "state": shown.state.as_str(),
            "since": since,
            "host": cfg.map(|c| c.host.clone()),
            "port": cfg.map(|c| c.port),
            "clientId": cfg.map(|c| c.client_id.clone()),
            "tls": cfg.map(|c| c.tls.is_some()),
            "lastError": shown.last_error,
            "connects": l.connects.load(Relaxed),
            "reconnects": l.reconnects.load(Relaxed),
            "published": l.published.load(Relaxed),
            "acked": l.acked.load(Relaxed),
            "resent": l.resent.load(Relaxed),
            "received": l.received.load(Relaxed),
            "subscriptions": shown.subscriptions,
            "retryInSeconds": retry,
            "window": cfg.map(|c| c.window),
        });
        let s = self.spool.snapshot();
        let st = &self.spool.stats;
        let queue = serde_json::json!({
            "storage": s.settings.storage.as_str(),
            "fsync": match s.settings.fsync { Fsync::Always => "always", Fsync::Batch => "batch", Fsync::Never => "never" },
            "whenFull": match s.settings.when_full { SpoolWhenFull::DropOldest => "dropOldest", SpoolWhenFull::Backpressure => "backpressure" },
            "maxSizeBytes": s.settings.max_bytes,
            "messages": s.messages,
            "bytes": s.bytes,
            "waitingForRoom": s.waiting,
            "inFlight": l.in_flight.load(Relaxed),
            "appended": st.appended.load(Relaxed),
            "acked": st.acked.load(Relaxed),
            "dropped": st.dropped.load(Relaxed),
            "refused": st.refused.load(Relaxed),
            "replayed": st.replayed.load(Relaxed),
            "commits": st.commits.load(Relaxed),
            "oldestAgeMs": s.oldest_age_ms(),
            "storageError": s.storage_error,
        });
        (cloud, queue)
    }
}

impl Cloud {
    fn source_name(&self, source: &Endpoint) -> Arc<str> {
        if let Some(name) = self.sources.read().unwrap_or_else(|p| p.into_inner()).get(source) {
            return name.clone();
        }
        let mut map = self.sources.write().unwrap_or_else(|p| p.into_inner());
        // Sources come from the group; redeploys may leave old ones behind.
        if map.len() > 4096 {
            map.clear();
        }
        map.entry(source.clone()).or_insert_with(|| Arc::from(source.to_string().as_str())).clone()
    }
}

impl crate::services::CoreService for Cloud {
    fn name(&self) -> &'static str {
        crate::group::CLOUD
    }

    fn endpoint(&self) -> Option<Endpoint> {
        Some(Endpoint::Cloud)
    }

    fn deliver(&self, source: &Endpoint, msg: &Message, when_full: WhenFull) -> Delivery {
        Deliver::deliver(self, &Endpoint::Cloud, source, msg, when_full)
    }

    fn room(&self, ticket: u64) -> Option<Arc<Notify>> {
        Deliver::room(self, &Endpoint::Cloud, ticket)
    }
}

impl Deliver for Cloud {
    fn deliver(&self, target: &Endpoint, source: &Endpoint, msg: &Message, when_full: WhenFull) -> Delivery {
        if *target != Endpoint::Cloud {
            return Delivery::Dropped("not the cloud");
        }
        match self.spool.append(&self.source_name(source), &msg.topic, &msg.payload, when_full == WhenFull::Hold) {
            Appended::Settled => Delivery::Accepted,
            Appended::Pending(ticket) => Delivery::Pending(ticket),
            Appended::Refused(_) if when_full == WhenFull::Refuse => Delivery::Refused,
            Appended::Refused(reason) => Delivery::Dropped(reason),
            Appended::Closed => Delivery::Dropped("the core is stopping"),
        }
    }

    fn room(&self, target: &Endpoint, ticket: u64) -> Option<Arc<Notify>> {
        if *target != Endpoint::Cloud || ticket == 0 || self.spool.is_settled(ticket) {
            None
        } else {
            Some(self.spool.settled_notify(ticket).clone())
        }
    }
}

//! The registry of device sessions, and the router's deliverer for devices.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::SystemTime;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::session::{Offer, SessionLimits, SessionState};
use crate::group::{Device, Endpoint};
use crate::router::{Deliver, Delivery, Message, RouteTable};

/// The connection a session is attached to.
#[derive(Debug)]
struct Attachment {
    conn: u64,
    cancel: CancellationToken,
    peer: SocketAddr,
    since: SystemTime,
}

/// One device's session, shared by its connection (reader and writer) and by
/// every publisher that routes to it.
#[derive(Debug)]
pub struct Session {
    pub thing: Arc<str>,
    /// The group entry the device was admitted under.
    pub device: Device,
    state: Mutex<SessionState>,
    /// Wakes the connection's writer.
    pub wake: Notify,
    attachment: Mutex<Option<Attachment>>,
}

impl Session {
    /// Locks the session state. Critical sections are short and never await.
    pub fn state(&self) -> MutexGuard<'_, SessionState> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn attachment(&self) -> MutexGuard<'_, Option<Attachment>> {
        self.attachment.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes the attached connection, if any.
    pub fn kick(&self) {
        if let Some(a) = self.attachment().as_ref() {
            a.cancel.cancel();
        }
    }
}

/// Counters shown by `ggcore status`.
#[derive(Debug, Default)]
pub struct BrokerStats {
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    pub tls_failures: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub oversized_payloads: AtomicU64,
    pub takeovers: AtomicU64,
}

/// A connected device, for status.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectedDevice {
    pub thing: String,
    pub peer: String,
    pub since_unix: u64,
    pub subscriptions: Vec<String>,
    pub pending: usize,
    pub dropped: u64,
}

pub struct DeviceHub {
    sessions: RwLock<HashMap<Arc<str>, Arc<Session>>>,
    limits: SessionLimits,
    next_conn: AtomicU64,
    pub stats: BrokerStats,
}

impl DeviceHub {
    pub fn new(limits: SessionLimits) -> Self {
        Self { sessions: RwLock::new(HashMap::new()), limits, next_conn: AtomicU64::new(1), stats: BrokerStats::default() }
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Arc<str>, Arc<Session>>> {
        self.sessions.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Arc<str>, Arc<Session>>> {
        self.sessions.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Attaches connection `conn` for `device`; an older connection with the same
    /// client id is closed. Returns the session and MQTT's session-present flag.
    pub fn attach(&self, device: &Device, clean: bool, conn: u64, cancel: CancellationToken, peer: SocketAddr) -> (Arc<Session>, bool) {
        let thing: Arc<str> = Arc::from(device.thing.name());
        let mut map = self.write();
        let existing = map.get(&thing).cloned();
        if let Some(old) = &existing {
            if let Some(a) = old.attachment().take() {
                tracing::info!(thing = %thing, old_peer = %a.peer, new_peer = %peer, "a second connection with the same client id takes over; closing the older one");
                self.stats.takeovers.fetch_add(1, Ordering::Relaxed);
                a.cancel.cancel();
                old.state().detach(a.conn);
            }
        }
        let reusable = existing.filter(|s| !clean && !s.state().clean && s.device.certificate == device.certificate);
        let present = reusable.is_some();
        let session = match reusable {
            Some(s) => s,
            None => {
                let s = Arc::new(Session {
                    thing: thing.clone(),
                    device: device.clone(),
                    state: Mutex::new(SessionState::new(clean, self.limits)),
                    wake: Notify::new(),
                    attachment: Mutex::new(None),
                });
                map.insert(thing, s.clone());
                s
            }
        };
        session.state().attach(conn);
        *session.attachment() = Some(Attachment { conn, cancel, peer, since: SystemTime::now() });
        (session, present)
    }

    /// Detaches `conn`; a clean session ends with it.
    pub fn detach(&self, session: &Arc<Session>, conn: u64) {
        {
            let mut a = session.attachment();
            if a.as_ref().is_some_and(|x| x.conn == conn) {
                *a = None;
            }
        }
        let (was_attached, clean) = {
            let mut st = session.state();
            (st.detach(conn), st.clean)
        };
        if was_attached && clean {
            let mut map = self.write();
            if map.get(&session.thing).is_some_and(|s| Arc::ptr_eq(s, session)) {
                map.remove(&session.thing);
            }
        }
    }

    /// After a redeploy: devices no longer in the group, or whose entry or
    /// certificate changed, are disconnected and their sessions ended; the others
    /// keep only the subscriptions the new table still grants.
    pub fn apply_table(&self, table: &RouteTable) {
        let mut map = self.write();
        map.retain(|thing, session| {
            let keep = table.device(thing).is_some_and(|d| d.thing == session.device.thing && d.certificate == session.device.certificate);
            if !keep {
                tracing::info!(thing = %thing, "device removed from the group or its entry changed; disconnecting");
                session.kick();
                return false;
            }
            let revoked = session.state().retain_subscriptions(|f| table.grants(thing, f));
            if revoked > 0 {
                tracing::info!(thing = %thing, revoked, "subscriptions no longer granted by the group were removed");
            }
            true
        });
    }

    /// Closes every connection (shutdown).
    pub fn kick_all(&self) {
        for s in self.read().values() {
            s.kick();
        }
    }

    pub fn connected(&self) -> Vec<ConnectedDevice> {
        let map = self.read();
        let mut out: Vec<ConnectedDevice> = map
            .values()
            .filter_map(|s| {
                let a = s.attachment();
                let a = a.as_ref()?;
                let st = s.state();
                Some(ConnectedDevice {
                    thing: s.thing.to_string(),
                    peer: a.peer.to_string(),
                    since_unix: a.since.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
                    subscriptions: st.subscriptions().iter().map(|(f, q)| format!("{f} (QoS {})", *q as u8)).collect(),
                    pending: st.pending(),
                    dropped: st.counters.dropped,
                })
            })
            .collect();
        out.sort_by(|a, b| a.thing.cmp(&b.thing));
        out
    }

    pub fn session_count(&self) -> usize {
        self.read().len()
    }
}

impl Deliver for DeviceHub {
    fn deliver(&self, target: &Endpoint, _source: &Endpoint, msg: &Message) -> Delivery {
        let Endpoint::Device(thing) = target else {
            return Delivery::Dropped("not a device");
        };
        let session = match self.read().get(thing.name()) {
            Some(s) => s.clone(),
            None => return Delivery::NotSubscribed,
        };
        let offer = session.state().offer(msg);
        match offer {
            Offer::Queued => {
                session.wake.notify_one();
                Delivery::Accepted
            }
            Offer::Overflow => {
                session.wake.notify_one();
                Delivery::Accepted
            }
            Offer::NotSubscribed | Offer::Offline => Delivery::NotSubscribed,
            Offer::Dropped(reason) => Delivery::Dropped(reason),
        }
    }
}

//! The registry of device sessions, and the router's deliverer for devices.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Instant, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::session::{Offer, SessionLimits, SessionState};
use crate::group::{Device, Endpoint};
use crate::router::{Deliver, Delivery, Message, RouteTable, WhenFull};

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
    /// Wakes publishers held back by this session's full queue
    /// (`notify_waiters` when [`SessionState::take_room_signal`] says so).
    pub room: Arc<Notify>,
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

    /// Wakes held-back publishers if the queue has room again (call after
    /// anything that drains the queue or detaches the session).
    pub fn signal_room(&self) {
        if self.state().take_room_signal() {
            self.room.notify_waiters();
        }
    }

    /// Detaches `conn` from the state (see [`SessionState::detach`]), logging
    /// the messages past the offline bound that this drops.
    fn detach_state(&self, conn: u64) -> bool {
        let mut st = self.state();
        let before = st.counters.dropped;
        let detached = st.detach(conn);
        let dropped = st.counters.dropped - before;
        if dropped > 0 {
            tracing::warn!(thing = %self.thing, dropped, max = st.limits().max_queued,
                "device went offline with more queued than its session keeps; the newest messages were dropped");
        }
        detached
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
    /// Connections closed because the device stalled with a full queue.
    pub stalled_devices: AtomicU64,
}

/// A device session, for status: connected, or offline with a persistent
/// session that keeps its QoS 1 messages.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectedDevice {
    pub thing: String,
    /// `None` for an offline persistent session.
    pub peer: Option<String>,
    pub since_unix: u64,
    pub subscriptions: Vec<String>,
    /// Messages queued and in flight.
    pub pending: usize,
    /// Messages dropped because the device was offline with a full session.
    pub dropped: u64,
    /// Messages written (QoS 0) or acknowledged (QoS 1).
    pub delivered: u64,
    /// Times a publisher was held back by this device's full queue.
    pub held: u64,
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
                old.detach_state(a.conn);
                old.room.notify_waiters();
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
                    room: Arc::new(Notify::new()),
                    attachment: Mutex::new(None),
                });
                map.insert(thing, s.clone());
                s
            }
        };
        session.state().attach(conn, Instant::now());
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
        let (was_attached, clean) = (session.detach_state(conn), session.state().clean);
        // Offline sessions hold nobody back.
        session.room.notify_waiters();
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

    /// Every session: connected devices, and offline persistent sessions.
    pub fn sessions(&self) -> Vec<ConnectedDevice> {
        let map = self.read();
        let mut out: Vec<ConnectedDevice> = map
            .values()
            .map(|s| {
                let a = s.attachment();
                let st = s.state();
                ConnectedDevice {
                    thing: s.thing.to_string(),
                    peer: a.as_ref().map(|a| a.peer.to_string()),
                    since_unix: a
                        .as_ref()
                        .and_then(|a| a.since.duration_since(SystemTime::UNIX_EPOCH).ok())
                        .map(|d| d.as_secs())
                        .unwrap_or(0),
                    subscriptions: st.subscriptions().iter().map(|(f, q)| format!("{f} (QoS {})", *q as u8)).collect(),
                    pending: st.pending(),
                    dropped: st.counters.dropped,
                    delivered: st.counters.delivered,
                    held: st.counters.held,
                }
            })
            .collect();
        out.sort_by(|a, b| a.thing.cmp(&b.thing));
        out
    }

    /// The connected devices.
    pub fn connected(&self) -> Vec<ConnectedDevice> {
        self.sessions().into_iter().filter(|d| d.peer.is_some()).collect()
    }

    pub fn session_count(&self) -> usize {
        self.read().len()
    }
}

impl DeviceHub {
    fn session(&self, thing: &str) -> Option<Arc<Session>> {
        self.read().get(thing).cloned()
    }
}

impl Deliver for DeviceHub {
    fn deliver(&self, target: &Endpoint, _source: &Endpoint, msg: &Message, when_full: WhenFull) -> Delivery {
        let Endpoint::Device(thing) = target else {
            return Delivery::Dropped("not a device");
        };
        let Some(session) = self.session(thing.name()) else {
            return Delivery::NotSubscribed;
        };
        let offer = session.state().offer(msg, when_full == WhenFull::Hold, Instant::now);
        match offer {
            Offer::Queued => {
                session.wake.notify_one();
                Delivery::Accepted
            }
            Offer::Full => {
                session.wake.notify_one();
                Delivery::Full
            }
            Offer::Refused => Delivery::Refused,
            Offer::NotSubscribed | Offer::Offline => Delivery::NotSubscribed,
            Offer::Dropped(reason) => Delivery::Dropped(reason),
        }
    }

    fn room(&self, target: &Endpoint, _ticket: u64) -> Option<Arc<Notify>> {
        let Endpoint::Device(thing) = target else { return None };
        let session = self.session(thing.name())?;
        let room = session.state().room_or_wait();
        if room {
            None
        } else {
            Some(session.room.clone())
        }
    }
}

//! The cloud link: one MQTT 3.1.1 connection upstream (rumqttc over rustls)
//! that sends the queue, QoS 1, and brings the group's `Source: cloud` topics
//! down to the router (docs/queue.md, "The cloud link").
//!
//! One task owns the connection. It keeps up to `window` messages in flight,
//! matching each PUBACK to the queue entry it acknowledges (rumqttc reports
//! the packet id of each publish as it goes out, in the order they were
//! handed to it). A lost connection forgets what was in flight: everything
//! not acknowledged is sent again, from the oldest, on the next connection
//! (a clean session; duplicates are counted as `resent`). Attempts are spaced
//! by a jittered exponential back-off capped at
//! `coreThing.mqttMaxConnectionRetryInterval`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS, Transport};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::spool::Spool;

/// First back-off step; doubled per failed attempt up to the configured cap.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// How long a stopping core waits for the broker to take its DISCONNECT.
const DISCONNECT_WITHIN: Duration = Duration::from_millis(500);

/// Where and how to connect.
#[derive(Clone)]
pub struct LinkConfig {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub keep_alive: Duration,
    pub max_retry: Duration,
    /// `None`: plain TCP (`ggcore.cloud.tls: false`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Messages in flight (sent, not acknowledged) at most.
    pub window: u16,
    /// Largest packet taken from the cloud.
    pub max_incoming: usize,
}

/// What the link is doing, as `ggcore status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Disabled,
    Connecting,
    Connected,
    /// Backing off after a failed or lost connection.
    Waiting,
    Stopped,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Disabled => "disabled",
            LinkState::Connecting => "connecting",
            LinkState::Connected => "connected",
            LinkState::Waiting => "waiting",
            LinkState::Stopped => "stopped",
        }
    }
}

/// The link's state and counters, shared with status.
#[derive(Debug)]
pub struct LinkStatus {
    inner: Mutex<LinkShown>,
    /// CONNACKs accepted.
    pub connects: AtomicU64,
    /// Connection attempts after the first.
    pub reconnects: AtomicU64,
    /// PUBLISH packets sent (first sends and resends).
    pub published: AtomicU64,
    /// Messages sent again (after a lost connection or a restart).
    pub resent: AtomicU64,
    /// PUBACKs received.
    pub acked: AtomicU64,
    /// Messages received from the cloud.
    pub received: AtomicU64,
    /// Messages sent and not acknowledged yet, on the current connection.
    pub in_flight: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct LinkShown {
    pub state: LinkState,
    pub last_error: Option<String>,
    pub since: SystemTime,
    pub retry_at: Option<tokio::time::Instant>,
    pub subscriptions: Vec<String>,
}

impl LinkStatus {
    pub fn new(state: LinkState, why: Option<String>) -> Self {
        Self {
            inner: Mutex::new(LinkShown { state, last_error: why, since: SystemTime::now(), retry_at: None, subscriptions: Vec::new() }),
            connects: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            published: AtomicU64::new(0),
            resent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            received: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        }
    }

    pub fn shown(&self) -> LinkShown {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, state: LinkState, error: Option<String>, retry_at: Option<tokio::time::Instant>) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.state != state {
            g.since = SystemTime::now();
        }
        g.state = state;
        if error.is_some() {
            g.last_error = error;
        }
        g.retry_at = retry_at;
    }

    fn set_subscriptions(&self, filters: &[String]) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).subscriptions = filters.to_vec();
    }
}

/// A message from the cloud, for the router.
pub type Inbound = rumqttc::Publish;

/// Jittered exponential back-off: attempt `n` (0-based) waits a random time
/// between half and all of `min(cap, FIRST_RETRY * 2^n)`.
pub fn backoff(attempt: u32, cap: Duration) -> Duration {
    let full = FIRST_RETRY.saturating_mul(1u32 << attempt.min(20)).min(cap);
    let half = full / 2;
    let r = uuid::Uuid::new_v4().as_u128() as u64;
    let jitter = if half.is_zero() { 0 } else { r % (half.as_millis() as u64 + 1) };
    half + Duration::from_millis(jitter)
}

/// Runs the link until `stop`. `subscriptions` carries the upstream filters
/// of the group in force; messages from the cloud go to `inbound`.
pub async fn run(
    cfg: LinkConfig,
    spool: Arc<Spool>,
    status: Arc<LinkStatus>,
    mut subscriptions: watch::Receiver<Vec<String>>,
    inbound: mpsc::Sender<Inbound>,
    stop: CancellationToken,
) {
    let mut attempt: u32 = 0;
    // The highest sequence number ever sent: a message at or below it is a resend.
    let mut sent_upto: u64 = 0;
    let mut first = true;
    loop {
        if stop.is_cancelled() {
            break;
        }
        if !first {
            status.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        first = false;
        status.set(LinkState::Connecting, None, None);
        tracing::info!(host = %cfg.host, port = cfg.port, client_id = %cfg.client_id, "cloud link: connecting");
        let mut session = Session::new(&cfg, &spool, &status);
        let outcome = tokio::select! {
            r = session.run(&mut subscriptions, &inbound, &mut sent_upto, &mut attempt) => r,
            _ = stop.cancelled() => Err(None),
        };
        status.in_flight.store(0, Ordering::Relaxed);
        let error = match outcome {
            Ok(()) => break,
            Err(None) => {
                session.disconnect().await;
                break;
            }
            Err(Some(e)) => e,
        };
        let wait = backoff(attempt, cfg.max_retry);
        attempt = attempt.saturating_add(1);
        let retry_at = tokio::time::Instant::now() + wait;
        status.set(LinkState::Waiting, Some(error.clone()), Some(retry_at));
        tracing::warn!(error = %error, retry_in_ms = wait.as_millis() as u64, queued = spool.snapshot().messages,
            "cloud link: not connected; trying again after a pause");
        tokio::select! {
            _ = tokio::time::sleep_until(retry_at) => {}
            _ = stop.cancelled() => break,
        }
    }
    status.set(LinkState::Stopped, None, None);
    tracing::info!("cloud link: stopped");
}

/// One connection: from CONNECT to its loss.
struct Session<'a> {
    client: AsyncClient,
    events: EventLoop,
    spool: &'a Arc<Spool>,
    status: &'a LinkStatus,
    window: usize,
    /// Handed to rumqttc, packet id not known yet (in order).
    handed: VecDeque<u64>,
    /// Packet id → sequence number of what is on the wire.
    in_flight: HashMap<u16, u64>,
    /// The last sequence number handed over on this connection.
    cursor: u64,
    subscribed: Vec<String>,
}

impl<'a> Session<'a> {
    fn new(cfg: &LinkConfig, spool: &'a Arc<Spool>, status: &'a LinkStatus) -> Self {
        let mut o = MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
        o.set_keep_alive(cfg.keep_alive);
        o.set_clean_session(true);
        o.set_inflight(cfg.window.max(1));
        o.set_max_packet_size(cfg.max_incoming, cfg.max_incoming);
        if let Some(tls) = &cfg.tls {
            o.set_transport(Transport::Tls(rumqttc::TlsConfiguration::Rustls(tls.clone())));
        }
        let window = usize::from(cfg.window.max(1));
        let (client, events) = AsyncClient::new(o, window + 64);
        Session {
            client,
            events,
            spool,
            status,
            window,
            handed: VecDeque::new(),
            in_flight: HashMap::new(),
            cursor: 0,
            subscribed: Vec::new(),
        }
    }

    /// `Err(Some(why))` when the connection is lost or refused.
    async fn run(
        &mut self,
        subscriptions: &mut watch::Receiver<Vec<String>>,
        inbound: &mpsc::Sender<Inbound>,
        sent_upto: &mut u64,
        attempt: &mut u32,
    ) -> Result<(), Option<String>> {
        // CONNECT, CONNACK.
        match self.events.poll().await {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {}
            Ok(other) => return Err(Some(format!("expected CONNACK, got {other:?}"))),
            Err(e) => return Err(Some(describe(&e))),
        }
        *attempt = 0;
        self.status.connects.fetch_add(1, Ordering::Relaxed);
        self.status.set(LinkState::Connected, None, None);
        tracing::info!(queued = self.spool.snapshot().messages, "cloud link: connected");
        let filters = subscriptions.borrow_and_update().clone();
        self.resubscribe(&filters).await;
        loop {
            self.fill(sent_upto).await?;
            let outstanding = self.handed.len() + self.in_flight.len();
            self.status.in_flight.store(outstanding as u64, Ordering::Relaxed);
            let room = outstanding < self.window;
            tokio::select! {
                event = self.events.poll() => match event {
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(seq) = self.handed.pop_front() {
                            self.in_flight.insert(pkid, seq);
                        }
                    }
                    Ok(Event::Incoming(Incoming::PubAck(ack))) => {
                        if let Some(seq) = self.in_flight.remove(&ack.pkid) {
                            self.status.acked.fetch_add(1, Ordering::Relaxed);
                            self.spool.ack(seq);
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        self.status.received.fetch_add(1, Ordering::Relaxed);
                        // Backpressure: a full router slows the link down.
                        if inbound.send(p).await.is_err() {
                            return Ok(());
                        }
                    }
                    Ok(Event::Incoming(Incoming::SubAck(ack))) => {
                        if ack.return_codes.iter().any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) {
                            tracing::warn!(pkid = ack.pkid, "cloud link: the cloud refused a subscription");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return Err(Some(describe(&e))),
                },
                _ = self.spool.appended_notify().notified(), if room => {}
                changed = subscriptions.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let filters = subscriptions.borrow_and_update().clone();
                    self.resubscribe(&filters).await;
                }
            }
        }
    }

    /// Hands queued messages to rumqttc while the window has room.
    async fn fill(&mut self, sent_upto: &mut u64) -> Result<(), Option<String>> {
        let room = self.window.saturating_sub(self.handed.len() + self.in_flight.len());
        if room == 0 {
            return Ok(());
        }
        for e in self.spool.next_after(self.cursor, room) {
            self.client
                .publish_bytes(e.topic.to_string(), QoS::AtLeastOnce, false, e.payload.clone())
                .await
                .map_err(|err| Some(format!("cannot hand a message to the MQTT client: {err}")))?;
            self.cursor = e.seq;
            self.handed.push_back(e.seq);
            self.status.published.fetch_add(1, Ordering::Relaxed);
            if e.seq <= *sent_upto {
                self.status.resent.fetch_add(1, Ordering::Relaxed);
            } else {
                *sent_upto = e.seq;
            }
        }
        Ok(())
    }

    /// Subscribes to `filters` upstream, unsubscribing what is no longer wanted.
    async fn resubscribe(&mut self, filters: &[String]) {
        let gone: Vec<String> = self.subscribed.iter().filter(|f| !filters.contains(f)).cloned().collect();
        let new: Vec<String> = filters.iter().filter(|f| !self.subscribed.contains(f)).cloned().collect();
        for f in gone {
            if let Err(e) = self.client.unsubscribe(f.clone()).await {
                tracing::warn!(filter = %f, error = %e, "cloud link: cannot unsubscribe");
            }
        }
        if !new.is_empty() {
            let topics = new.iter().map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
            if let Err(e) = self.client.subscribe_many(topics).await {
                tracing::warn!(error = %e, "cloud link: cannot subscribe");
            } else {
                tracing::info!(filters = ?new, "cloud link: subscribed");
            }
        }
        self.subscribed = filters.to_vec();
        self.status.set_subscriptions(filters);
    }

    /// Says DISCONNECT and lets the broker take it (bounded).
    async fn disconnect(&mut self) {
        if self.client.try_disconnect().is_err() {
            return;
        }
        let _ = tokio::time::timeout(DISCONNECT_WITHIN, async {
            while let Ok(e) = self.events.poll().await {
                if matches!(e, Event::Outgoing(Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// A connection error as a person reads it.
fn describe(e: &ConnectionError) -> String {
    use rumqttc::mqttbytes::Error as Codec;
    use rumqttc::StateError;
    let io = match e {
        ConnectionError::Io(io) | ConnectionError::MqttState(StateError::Io(io) | StateError::Deserialization(Codec::Io(io))) => Some(io),
        _ => None,
    };
    if let Some(io) = io {
        let text = io.to_string();
        if text.contains("alert") {
            return format!(
                "TLS: the cloud ended the handshake ({text}); check that it trusts the issuer of coreThing.certPath and that the certificate is active"
            );
        }
        return text;
    }
    match e {
        ConnectionError::ConnectionRefused(code) => format!("the cloud refused the connection (CONNACK {code:?})"),
        ConnectionError::Tls(t) => format!("TLS: {t}"),
        ConnectionError::NetworkTimeout => "no answer from the cloud (connection timed out)".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_under_the_cap() {
        let cap = Duration::from_secs(60);
        for attempt in 0..30 {
            let d = backoff(attempt, cap);
            let full = FIRST_RETRY.saturating_mul(1u32 << attempt.min(20)).min(cap);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?} vs {full:?}");
        }
        assert!(backoff(30, Duration::from_secs(2)) <= Duration::from_secs(2));
    }
}

//! The cloud link: one MQTT 3.1.1 connection upstream (tokio-rustls, the
//! rumqttc packet codec) that sends the queue, QoS 1, and brings the group's
//! `Source: cloud` topics down to the router (docs/queue.md, "The cloud link").
//!
//! One task owns the connection. It keeps up to `window` messages in flight;
//! their packet ids are the window's slots, so each PUBACK names the queue
//! entry it acknowledges. Publishes that are ready go out in one write. A
//! lost connection forgets what was in flight: everything not acknowledged
//! is sent again, from the oldest, on the next connection (a clean session;
//! duplicates are counted as `resent`). Attempts are spaced by a jittered
//! exponential back-off capped at `coreThing.mqttMaxConnectionRetryInterval`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{
    Connect, ConnectReturnCode, Packet, PubAck, Publish, Subscribe, SubscribeFilter, SubscribeReasonCode, Unsubscribe,
};
use rumqttc::mqttbytes::QoS;

use crate::broker::packet::packet_name;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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

/// A message sent upstream at QoS 0 outside the queue, on the connection of
/// the moment before its deadline, or not at all (the shadow sync's requests:
/// a stale one must not reach the cloud later).
pub struct Volatile {
    pub topic: String,
    pub payload: bytes::Bytes,
    pub deadline: tokio::time::Instant,
}

/// Runs the link until `stop`. `subscriptions` carries the upstream filters
/// of the group in force; messages from the cloud go to `inbound`.
pub async fn run(
    cfg: LinkConfig,
    spool: Arc<Spool>,
    status: Arc<LinkStatus>,
    mut subscriptions: watch::Receiver<Vec<String>>,
    mut volatile: mpsc::Receiver<Volatile>,
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
        // What was meant for a lost connection is not sent on the next one.
        while volatile.try_recv().is_ok() {}
        status.set(LinkState::Connecting, None, None);
        tracing::info!(host = %cfg.host, port = cfg.port, client_id = %cfg.client_id, "cloud link: connecting");
        let connected = tokio::select! {
            r = Session::connect(&cfg, &spool, &status) => r,
            _ = stop.cancelled() => break,
        };
        let error = match connected {
            Err(e) => e,
            Ok(mut session) => {
                attempt = 0;
                status.connects.fetch_add(1, Ordering::Relaxed);
                status.set(LinkState::Connected, None, None);
                tracing::info!(queued = spool.snapshot().messages, "cloud link: connected");
                let outcome = tokio::select! {
                    r = session.run(&mut subscriptions, &mut volatile, &inbound, &mut sent_upto) => Some(r),
                    _ = stop.cancelled() => None,
                };
                status.in_flight.store(0, Ordering::Relaxed);
                match outcome {
                    None => {
                        session.disconnect().await;
                        break;
                    }
                    Some(Ok(())) => break,
                    Some(Err(e)) => e,
                }
            }
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

/// The connection's byte stream: TLS, or plain TCP (`ggcore.cloud.tls: false`).
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Packet ids of SUBSCRIBE/UNSUBSCRIBE: above every publish's (1..=window).
const CONTROL_PKIDS: std::ops::RangeInclusive<u16> = 60_000..=65_535;
/// How long CONNECT → CONNACK (TCP and TLS included) may take.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);
/// Bytes of PUBLISH written to the socket at once at most.
const WRITE_BATCH: usize = 64 * 1024;

/// One connection: from CONNECT to its loss. Its own MQTT client over the
/// rumqttc codec (ADR 0013): publishes go out in batches (one TLS write for
/// all that fit), packet ids are the window's slots, and PUBACKs map back to
/// sequence numbers directly.
struct Session<'a> {
    rd: tokio::io::ReadHalf<Box<dyn Stream>>,
    wr: tokio::io::WriteHalf<Box<dyn Stream>>,
    inbuf: BytesMut,
    out: BytesMut,
    spool: &'a Arc<Spool>,
    status: &'a LinkStatus,
    max_packet: usize,
    keep_alive: Duration,
    /// Slot `i` holds the sequence number sent with packet id `i + 1`.
    slots: Vec<Option<u64>>,
    free: Vec<u16>,
    /// The last sequence number sent on this connection.
    cursor: u64,
    subscribed: Vec<String>,
    next_control: u16,
    last_sent: tokio::time::Instant,
    ping_sent: Option<tokio::time::Instant>,
}

impl<'a> Session<'a> {
    /// TCP, TLS, CONNECT and CONNACK.
    async fn connect(cfg: &LinkConfig, spool: &'a Arc<Spool>, status: &'a LinkStatus) -> Result<Session<'a>, String> {
        let work = async {
            let tcp = tokio::net::TcpStream::connect((cfg.host.as_str(), cfg.port)).await.map_err(|e| e.to_string())?;
            let _ = tcp.set_nodelay(true);
            let stream: Box<dyn Stream> = match &cfg.tls {
                Some(tls) => {
                    let name = rustls_pki_types::ServerName::try_from(cfg.host.clone())
                        .map_err(|e| format!("coreThing.iotHost '{}' is not a host name: {e}", cfg.host))?;
                    let connector = tokio_rustls::TlsConnector::from(tls.clone());
                    Box::new(connector.connect(name, tcp).await.map_err(|e| describe_io(&e))?)
                }
                None => Box::new(tcp),
            };
            let (rd, wr) = tokio::io::split(stream);
            let window = usize::from(cfg.window.max(1));
            let mut s = Session {
                rd,
                wr,
                inbuf: BytesMut::with_capacity(16 * 1024),
                out: BytesMut::with_capacity(WRITE_BATCH + 1024),
                spool,
                status,
                max_packet: cfg.max_incoming,
                keep_alive: cfg.keep_alive,
                slots: vec![None; window],
                free: (1..=window as u16).rev().collect(),
                cursor: 0,
                subscribed: Vec::new(),
                next_control: *CONTROL_PKIDS.start(),
                last_sent: tokio::time::Instant::now(),
                ping_sent: None,
            };
            let mut connect = Connect::new(cfg.client_id.clone());
            connect.keep_alive = cfg.keep_alive.as_secs().min(u64::from(u16::MAX)) as u16;
            connect.clean_session = true;
            s.queue(Packet::Connect(connect))?;
            s.flush().await?;
            match s.read_packet().await? {
                Packet::ConnAck(ack) if ack.code == ConnectReturnCode::Success => Ok(s),
                Packet::ConnAck(ack) => Err(format!("the cloud refused the connection (CONNACK {:?})", ack.code)),
                other => Err(format!("expected CONNACK, got {}", packet_name(&other))),
            }
        };
        tokio::time::timeout(CONNECT_WITHIN, work)
            .await
            .map_err(|_| format!("no answer from the cloud within {} s (TCP, TLS and CONNECT)", CONNECT_WITHIN.as_secs()))?
    }

    /// Sends the queue and serves the connection until it is lost
    /// (`Err(why)`) or the router goes away (`Ok`).
    async fn run(
        &mut self,
        subscriptions: &mut watch::Receiver<Vec<String>>,
        volatile: &mut mpsc::Receiver<Volatile>,
        inbound: &mpsc::Sender<Inbound>,
        sent_upto: &mut u64,
    ) -> Result<(), String> {
        let filters = subscriptions.borrow_and_update().clone();
        self.resubscribe(&filters)?;
        let tick = (self.keep_alive / 2).max(Duration::from_secs(1));
        loop {
            self.fill(sent_upto)?;
            self.flush().await?;
            let in_flight = self.slots.len() - self.free.len();
            self.status.in_flight.store(in_flight as u64, Ordering::Relaxed);
            let room = !self.free.is_empty();
            tokio::select! {
                read = self.rd.read_buf(&mut self.inbuf) => {
                    match read {
                        Ok(0) => return Err("the cloud closed the connection".to_string()),
                        Ok(_) => {}
                        Err(e) => return Err(describe_io(&e)),
                    }
                    while let Some(packet) = self.decode()? {
                        self.on_packet(packet, inbound).await?;
                    }
                }
                _ = self.spool.appended_notify().notified(), if room => {}
                Some(v) = volatile.recv() => {
                    if tokio::time::Instant::now() < v.deadline {
                        self.queue(Packet::Publish(Publish::from_bytes(v.topic, QoS::AtMostOnce, v.payload)))?;
                    }
                }
                changed = subscriptions.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let filters = subscriptions.borrow_and_update().clone();
                    self.resubscribe(&filters)?;
                }
                _ = tokio::time::sleep(tick) => self.keep_alive_check()?,
            }
        }
    }

    async fn on_packet(&mut self, packet: Packet, inbound: &mpsc::Sender<Inbound>) -> Result<(), String> {
        match packet {
            Packet::PubAck(ack) => {
                let slot = usize::from(ack.pkid).wrapping_sub(1);
                if let Some(seq) = self.slots.get_mut(slot).and_then(Option::take) {
                    self.free.push(ack.pkid);
                    self.status.acked.fetch_add(1, Ordering::Relaxed);
                    self.spool.ack(seq);
                }
            }
            Packet::Publish(p) => {
                self.status.received.fetch_add(1, Ordering::Relaxed);
                let ack = (p.qos != QoS::AtMostOnce).then(|| PubAck::new(p.pkid));
                // Backpressure: a full router slows the link down.
                if inbound.send(p).await.is_err() {
                    return Err("the core is stopping".to_string());
                }
                if let Some(ack) = ack {
                    self.queue(Packet::PubAck(ack))?;
                }
            }
            Packet::SubAck(ack) => {
                if ack.return_codes.iter().any(|c| matches!(c, SubscribeReasonCode::Failure)) {
                    tracing::warn!(pkid = ack.pkid, "cloud link: the cloud refused a subscription");
                }
            }
            Packet::PingResp => self.ping_sent = None,
            Packet::UnsubAck(_) => {}
            other => return Err(format!("the cloud sent an unexpected {}", packet_name(&other))),
        }
        Ok(())
    }

    /// Encodes queued messages while the window has room.
    fn fill(&mut self, sent_upto: &mut u64) -> Result<(), String> {
        if self.free.is_empty() || self.out.len() >= WRITE_BATCH {
            return Ok(());
        }
        for e in self.spool.next_after(self.cursor, self.free.len()) {
            let Some(pkid) = self.free.pop() else { break };
            let mut p = Publish::from_bytes(e.topic.to_string(), QoS::AtLeastOnce, e.payload.clone());
            p.pkid = pkid;
            self.queue(Packet::Publish(p))?;
            self.slots[usize::from(pkid) - 1] = Some(e.seq);
            self.cursor = e.seq;
            self.status.published.fetch_add(1, Ordering::Relaxed);
            if e.seq <= *sent_upto {
                self.status.resent.fetch_add(1, Ordering::Relaxed);
            } else {
                *sent_upto = e.seq;
            }
            if self.out.len() >= WRITE_BATCH {
                break;
            }
        }
        Ok(())
    }

    fn queue(&mut self, packet: Packet) -> Result<(), String> {
        packet.write(&mut self.out, usize::MAX).map(|_| ()).map_err(|e| format!("cannot encode a packet: {e}"))
    }

    async fn flush(&mut self) -> Result<(), String> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.wr.write_all(&self.out).await.map_err(|e| describe_io(&e))?;
        self.wr.flush().await.map_err(|e| describe_io(&e))?;
        self.out.clear();
        self.last_sent = tokio::time::Instant::now();
        Ok(())
    }

    fn decode(&mut self) -> Result<Option<Packet>, String> {
        match Packet::read(&mut self.inbuf, self.max_packet) {
            Ok(p) => Ok(Some(p)),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(format!("the cloud sent a malformed packet: {e}")),
        }
    }

    async fn read_packet(&mut self) -> Result<Packet, String> {
        loop {
            if let Some(p) = self.decode()? {
                return Ok(p);
            }
            match self.rd.read_buf(&mut self.inbuf).await {
                Ok(0) => return Err("the cloud closed the connection".to_string()),
                Ok(_) => {}
                Err(e) => return Err(describe_io(&e)),
            }
        }
    }

    /// PINGREQ when nothing was sent for the keep-alive; the connection is
    /// lost when its PINGRESP does not come within half of it.
    fn keep_alive_check(&mut self) -> Result<(), String> {
        let now = tokio::time::Instant::now();
        if let Some(sent) = self.ping_sent {
            if now.duration_since(sent) > self.keep_alive / 2 {
                return Err(format!("no PINGRESP from the cloud within {} s", (self.keep_alive / 2).as_secs()));
            }
        } else if now.duration_since(self.last_sent) >= self.keep_alive.saturating_sub(Duration::from_secs(1)) {
            self.queue(Packet::PingReq)?;
            self.ping_sent = Some(now);
        }
        Ok(())
    }

    fn control_pkid(&mut self) -> u16 {
        let id = self.next_control;
        self.next_control = if id == *CONTROL_PKIDS.end() { *CONTROL_PKIDS.start() } else { id + 1 };
        id
    }

    /// Subscribes to `filters` upstream, unsubscribing what is no longer wanted.
    fn resubscribe(&mut self, filters: &[String]) -> Result<(), String> {
        let gone: Vec<String> = self.subscribed.iter().filter(|f| !filters.contains(f)).cloned().collect();
        let new: Vec<String> = filters.iter().filter(|f| !self.subscribed.contains(f)).cloned().collect();
        if !gone.is_empty() {
            let mut u = Unsubscribe::new(gone[0].clone());
            u.topics = gone;
            u.pkid = self.control_pkid();
            self.queue(Packet::Unsubscribe(u))?;
        }
        if !new.is_empty() {
            let mut sub = Subscribe::new_many(new.iter().map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce)));
            sub.pkid = self.control_pkid();
            self.queue(Packet::Subscribe(sub))?;
            tracing::info!(filters = ?new, "cloud link: subscribed");
        }
        self.subscribed = filters.to_vec();
        self.status.set_subscriptions(filters);
        Ok(())
    }

    /// Says DISCONNECT (bounded: a stopping core does not wait for the cloud).
    async fn disconnect(&mut self) {
        if self.queue(Packet::Disconnect).is_ok() {
            let _ = tokio::time::timeout(DISCONNECT_WITHIN, self.flush()).await;
        }
    }
}

/// An I/O error of the connection as a person reads it.
fn describe_io(e: &std::io::Error) -> String {
    let text = e.to_string();
    if text.contains("alert") {
        return format!(
            "TLS: the cloud ended the handshake ({text}); check that it trusts the issuer of coreThing.certPath and that the certificate is active"
        );
    }
    if text.contains("certificate") || text.contains("Certificate") {
        return format!("TLS: {text} (coreThing.caPath must hold the CA that signed the cloud's certificate)");
    }
    text
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

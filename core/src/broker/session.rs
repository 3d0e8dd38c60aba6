//! A device's MQTT session: granted subscriptions, the outgoing queue and the
//! QoS 1 messages in flight. Plain data changed by methods that never touch a
//! socket; the connection's writer drains it.
//!
//! Bounds and flow control (docs/mqtt.md, "Flow control"): queued plus
//! in-flight messages are limited to [`SessionLimits::max_queued`]. While the
//! device is connected nothing is dropped: a message that fills the queue is
//! still taken ([`Offer::Full`]) and its publisher is held back until the
//! device drains the queue ([`SessionState::has_room`]). A device that makes
//! no progress (no PUBACK, nothing written) for
//! [`SessionLimits::stall_timeout`] while its queue is full is disconnected
//! ([`SessionState::stalled_since`]); a persistent session is kept. For an
//! offline persistent session, QoS 1 messages are queued up to the bound and
//! dropped beyond it (counted), those already queued included.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

use crate::router::{Message, Qos};
use crate::topic::TopicFilter;

/// Default of [`SessionLimits::max_queued`].
pub const DEFAULT_MAX_QUEUED: usize = 1000;
/// Default of [`SessionLimits::stall_timeout`].
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of [`SessionLimits::max_subscriptions`].
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 1000;

#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Queued plus in-flight messages: at this many, publishers to the
    /// device are held back (connected) or further messages dropped (offline).
    pub max_queued: usize,
    /// QoS 1 messages sent and not yet acknowledged.
    pub max_inflight: usize,
    /// Unacknowledged QoS 1 messages are sent again (DUP) after this long.
    pub retry_after: Duration,
    /// A connected device whose queue is full and that makes no progress for
    /// this long is disconnected.
    pub stall_timeout: Duration,
    /// Granted subscriptions a session may hold; further filters get SUBACK
    /// 0x80 (each one costs a match on every message routed to the device).
    pub max_subscriptions: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_queued: DEFAULT_MAX_QUEUED,
            max_inflight: 128,
            retry_after: Duration::from_secs(30),
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
        }
    }
}

/// A message waiting for (or in) delivery to this device.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub topic: Arc<str>,
    pub payload: Bytes,
    pub qos: Qos,
}

#[derive(Debug)]
struct InFlight {
    pkid: u16,
    msg: Outgoing,
    sent_at: Instant,
}

/// What happened to a message offered to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// Queued, and the queue is now at its bound: hold the publisher back
    /// until [`SessionState::has_room`].
    Full,
    /// Not queued: the queue is full and the publisher asked not to wait.
    Refused,
    /// No granted filter matches the topic.
    NotSubscribed,
    /// The device is offline and the message is QoS 0, or the session is
    /// clean (not kept, as MQTT says).
    Offline,
    /// Dropped: the device is offline and its persistent session is full.
    Dropped(&'static str),
}

/// Why a subscription was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeRefused {
    /// The session holds [`SessionLimits::max_subscriptions`] already.
    TooMany,
}

#[derive(Debug, Default)]
pub struct SessionCounters {
    /// Messages dropped because the device was offline with a full session.
    pub dropped: u64,
    /// Messages written (QoS 0) or acknowledged (QoS 1).
    pub delivered: u64,
    /// Times a publisher was held back by this session's full queue.
    pub held: u64,
}

#[derive(Debug)]
pub struct SessionState {
    pub clean: bool,
    limits: SessionLimits,
    subscriptions: Vec<(TopicFilter, Qos)>,
    queue: VecDeque<Outgoing>,
    inflight: VecDeque<InFlight>,
    next_pkid: u16,
    /// Encoded control packets (acks, pings) waiting for the writer.
    control: BytesMut,
    /// Packet ids of QoS 2 publishes of the device not released yet (PUBREL).
    pub qos2_awaiting_release: Vec<u16>,
    /// Connection currently attached, if any.
    pub attached: Option<u64>,
    /// In-flight messages must be sent again (after a reconnect).
    resend: bool,
    /// Since when the queue has been at its bound (connected), if it is.
    full_since: Option<Instant>,
    /// When the device last made progress on this connection: acknowledged a
    /// QoS 1 message or had QoS 0 messages written to it.
    last_progress: Option<Instant>,
    /// A publisher waits for room: signal it when the queue drains.
    room_wanted: bool,
    pub counters: SessionCounters,
}

impl SessionState {
    pub fn new(clean: bool, limits: SessionLimits) -> Self {
        Self {
            clean,
            limits,
            subscriptions: Vec::new(),
            queue: VecDeque::new(),
            inflight: VecDeque::new(),
            next_pkid: 1,
            control: BytesMut::new(),
            qos2_awaiting_release: Vec::new(),
            attached: None,
            resend: false,
            full_since: None,
            last_progress: None,
            room_wanted: false,
            counters: SessionCounters::default(),
        }
    }

    pub fn limits(&self) -> &SessionLimits {
        &self.limits
    }

    pub fn subscriptions(&self) -> &[(TopicFilter, Qos)] {
        &self.subscriptions
    }

    /// Adds or replaces a granted subscription; refused when the session holds
    /// [`SessionLimits::max_subscriptions`] other filters.
    pub fn subscribe(&mut self, filter: TopicFilter, qos: Qos) -> Result<(), SubscribeRefused> {
        if let Some(entry) = self.subscriptions.iter_mut().find(|(f, _)| *f == filter) {
            entry.1 = qos;
            return Ok(());
        }
        if self.subscriptions.len() >= self.limits.max_subscriptions {
            return Err(SubscribeRefused::TooMany);
        }
        self.subscriptions.push((filter, qos));
        Ok(())
    }

    pub fn unsubscribe(&mut self, filter: &str) {
        self.subscriptions.retain(|(f, _)| f.as_str() != filter);
    }

    /// Keeps only the subscriptions `keep` accepts (re-checked grants after a redeploy).
    pub fn retain_subscriptions(&mut self, mut keep: impl FnMut(&TopicFilter) -> bool) -> usize {
        let before = self.subscriptions.len();
        self.subscriptions.retain(|(f, _)| keep(f));
        before - self.subscriptions.len()
    }

    /// Delivery QoS for `topic`: the highest granted among matching filters, or None.
    fn granted_qos(&self, topic: &str) -> Option<Qos> {
        let mut best = None;
        for (f, q) in &self.subscriptions {
            if best < Some(*q) && f.matches(topic) {
                best = Some(*q);
                if *q == Qos::AtLeastOnce {
                    break;
                }
            }
        }
        best
    }

    pub fn pending(&self) -> usize {
        self.queue.len() + self.inflight.len()
    }

    /// Whether a publisher held back by this session may go on: the queue
    /// is under its bound, or nobody is connected to drain it (an offline
    /// session drops beyond its bound instead of holding anyone back).
    pub fn has_room(&self) -> bool {
        self.attached.is_none() || self.pending() < self.limits.max_queued
    }

    /// [`SessionState::has_room`], registering that a publisher waits when not.
    pub fn room_or_wait(&mut self) -> bool {
        let room = self.has_room();
        if !room {
            self.room_wanted = true;
        }
        room
    }

    /// Whether publishers waiting for room must be woken now (taken once).
    pub fn take_room_signal(&mut self) -> bool {
        if self.room_wanted && self.has_room() {
            self.room_wanted = false;
            return true;
        }
        false
    }

    /// Offers a routed message to this session. `hold` says what to do when
    /// the queue is full while the device is connected: take it and answer
    /// [`Offer::Full`] (the publisher waits), or refuse it.
    /// `now` is read only when the offer fills the queue (not on the hot path).
    pub fn offer(&mut self, msg: &Message, hold: bool, now: impl FnOnce() -> Instant) -> Offer {
        let Some(granted) = self.granted_qos(&msg.topic) else {
            return Offer::NotSubscribed;
        };
        let qos = granted.min(msg.qos);
        if self.attached.is_none() && (self.clean || qos == Qos::AtMostOnce) {
            // Nobody to send QoS 0 to; clean sessions end with their connection.
            return Offer::Offline;
        }
        let pending = self.pending();
        if self.attached.is_none() {
            if pending >= self.limits.max_queued {
                self.counters.dropped += 1;
                return Offer::Dropped("device offline and its persistent session is full");
            }
        } else if pending >= self.limits.max_queued && !hold {
            return Offer::Refused;
        }
        self.queue.push_back(Outgoing { topic: msg.topic.clone(), payload: msg.payload.clone(), qos });
        if self.attached.is_some() && pending + 1 >= self.limits.max_queued {
            if self.full_since.is_none() {
                self.full_since = Some(now());
            }
            self.counters.held += 1;
            return Offer::Full;
        }
        Offer::Queued
    }

    /// Since when the connected device has been stalled: its queue full and no
    /// progress made. The connection is closed once this is
    /// [`SessionLimits::stall_timeout`] ago.
    pub fn stalled_since(&self) -> Option<Instant> {
        if self.attached.is_none() || self.pending() < self.limits.max_queued {
            return None;
        }
        let full = self.full_since?;
        Some(match self.last_progress {
            Some(p) if p > full => p,
            _ => full,
        })
    }

    /// When a stalled device must be disconnected, if it is stalled.
    pub fn stall_deadline(&self) -> Option<Instant> {
        self.stalled_since().map(|t| t + self.limits.stall_timeout)
    }

    /// Progress matters only while the queue is full: a queue that fills
    /// later starts its stall clock then, after any earlier progress. So the
    /// clock is read only then.
    fn progressed(&mut self, now: impl FnOnce() -> Instant) {
        if self.full_since.is_none() {
            return;
        }
        if self.pending() < self.limits.max_queued {
            self.full_since = None;
        } else {
            self.last_progress = Some(now());
        }
    }

    /// Queues an encoded control packet (PUBACK, SUBACK, PINGRESP, ...).
    pub fn push_control(&mut self, encoded: &[u8]) {
        self.control.extend_from_slice(encoded);
    }

    /// Takes the control packets not written yet (a closing connection's last
    /// answers).
    pub fn take_control(&mut self) -> BytesMut {
        self.control.split()
    }

    /// Marks a connection attached; in-flight messages will be sent again. A
    /// session that is full already (it filled while the device was away)
    /// starts its stall clock at `now`: a publisher may be waiting on it.
    pub fn attach(&mut self, conn: u64, now: Instant) {
        self.attached = Some(conn);
        self.last_progress = None;
        self.full_since = (self.pending() >= self.limits.max_queued).then_some(now);
        self.resend = !self.inflight.is_empty();
        self.control.clear();
    }

    /// Detaches `conn` if it is the attached one; returns whether it was.
    /// Publishers waiting for room go on (see [`SessionState::has_room`]).
    pub fn detach(&mut self, conn: u64) -> bool {
        if self.attached == Some(conn) {
            self.attached = None;
            self.full_since = None;
            if self.clean {
                self.queue.clear();
                self.inflight.clear();
            } else {
                // QoS 0 messages are not kept for an offline device.
                self.queue.retain(|m| m.qos == Qos::AtLeastOnce);
                // Nor more than the bound: a held publisher may have added one
                // past it, and every reconnect would otherwise add another.
                // The newest go first: those still queued, then those sent
                // last (a message past the bound may already be in flight).
                while self.pending() > self.limits.max_queued {
                    if self.queue.pop_back().is_none() && self.inflight.pop_back().is_none() {
                        break;
                    }
                    self.counters.dropped += 1;
                }
            }
            self.control.clear();
            true
        } else {
            false
        }
    }

    /// Packet ids of the messages in flight, oldest first (for the fuzzing
    /// model, which checks which of them a detach kept).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn inflight_ids(&self) -> impl Iterator<Item = u16> + '_ {
        self.inflight.iter().map(|f| f.pkid)
    }

    /// A PUBACK arrived for `pkid`; returns whether it matched one in flight
    /// (a PUBACK for an unknown packet id is ignored).
    pub fn acknowledge(&mut self, pkid: u16, now: impl FnOnce() -> Instant) -> bool {
        match self.inflight.iter().position(|f| f.pkid == pkid) {
            Some(i) => {
                self.inflight.remove(i);
                self.counters.delivered += 1;
                self.progressed(now);
                true
            }
            None => false,
        }
    }

    fn alloc_pkid(&mut self) -> u16 {
        loop {
            let id = self.next_pkid;
            self.next_pkid = if id == u16::MAX { 1 } else { id + 1 };
            if !self.inflight.iter().any(|f| f.pkid == id) {
                return id;
            }
        }
    }

    /// Encodes what the writer should send now into `buf`; returns the number of
    /// publishes written. At most `max_batch` queued messages are taken.
    pub fn drain_into(&mut self, buf: &mut BytesMut, now: Instant, max_batch: usize) -> usize {
        buf.extend_from_slice(&self.control);
        self.control.clear();
        let mut n = 0;
        let retry = self.limits.retry_after;
        let resend_all = std::mem::take(&mut self.resend);
        for f in self.inflight.iter_mut() {
            if resend_all || now.duration_since(f.sent_at) >= retry {
                encode_publish(buf, &f.msg.topic, &f.msg.payload, f.msg.qos, f.pkid, true);
                f.sent_at = now;
                n += 1;
            }
        }
        let mut written_qos0 = false;
        while n < max_batch {
            if self.queue.front().is_some_and(|m| m.qos == Qos::AtLeastOnce) && self.inflight.len() >= self.limits.max_inflight {
                break;
            }
            let Some(msg) = self.queue.pop_front() else {
                break;
            };
            match msg.qos {
                Qos::AtMostOnce => {
                    encode_publish(buf, &msg.topic, &msg.payload, Qos::AtMostOnce, 0, false);
                    self.counters.delivered += 1;
                    written_qos0 = true;
                }
                Qos::AtLeastOnce => {
                    let pkid = self.alloc_pkid();
                    encode_publish(buf, &msg.topic, &msg.payload, Qos::AtLeastOnce, pkid, false);
                    self.inflight.push_back(InFlight { pkid, msg, sent_at: now });
                }
            }
            n += 1;
        }
        if written_qos0 {
            self.progressed(|| now);
        }
        n
    }

    /// Whether the writer has something to send now (ignoring retry timers).
    pub fn has_work(&self) -> bool {
        !self.control.is_empty()
            || self.resend
            || self.queue.front().is_some_and(|m| m.qos == Qos::AtMostOnce || self.inflight.len() < self.limits.max_inflight)
    }

    /// When the oldest in-flight message is due for a retry, if any.
    pub fn next_retry(&self) -> Option<Instant> {
        self.inflight.iter().map(|f| f.sent_at + self.limits.retry_after).min()
    }
}

/// Encodes an MQTT 3.1.1 PUBLISH (the hot path; checked against the codec's
/// parser in tests). Retain is never set: ggcore keeps no retained messages.
pub fn encode_publish(buf: &mut BytesMut, topic: &str, payload: &[u8], qos: Qos, pkid: u16, dup: bool) {
    let mut remaining = 2 + topic.len() + payload.len();
    if qos != Qos::AtMostOnce {
        remaining += 2;
    }
    buf.reserve(5 + remaining);
    buf.put_u8(0x30 | ((qos as u8) << 1) | if dup { 0x08 } else { 0 });
    let mut x = remaining;
    loop {
        let mut byte = (x % 128) as u8;
        x /= 128;
        if x > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if x == 0 {
            break;
        }
    }
    buf.put_u16(topic.len() as u16);
    buf.put_slice(topic.as_bytes());
    if qos != Qos::AtMostOnce {
        buf.put_u16(pkid);
    }
    buf.put_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::v4::Packet;

    fn msg(topic: &str, qos: Qos) -> Message {
        Message { topic: Arc::from(topic), payload: Bytes::from_static(b"p"), qos }
    }

    fn subscribed(clean: bool, limits: SessionLimits) -> SessionState {
        let mut s = SessionState::new(clean, limits);
        s.subscribe(TopicFilter::new("a/#").unwrap(), Qos::AtLeastOnce).unwrap();
        s.attach(1, Instant::now());
        s
    }

    fn offer(s: &mut SessionState, topic: &str, qos: Qos) -> Offer {
        s.offer(&msg(topic, qos), true, Instant::now)
    }

    fn read_publish(buf: &mut BytesMut) -> rumqttc::mqttbytes::v4::Publish {
        match Packet::read(buf, 1 << 20) {
            Ok(Packet::Publish(p)) => p,
            other => panic!("expected a PUBLISH, got {other:?}"),
        }
    }

    #[test]
    fn encoded_publish_parses_back() {
        for (qos, pkid) in [(Qos::AtMostOnce, 0), (Qos::AtLeastOnce, 7)] {
            for size in [0usize, 5, 200, 20_000] {
                let payload = vec![0xabu8; size];
                let mut buf = BytesMut::new();
                encode_publish(&mut buf, "$aws/things/x/shadow/get", &payload, qos, pkid, pkid != 0);
                let p = read_publish(&mut buf);
                assert_eq!(p.topic, "$aws/things/x/shadow/get");
                assert_eq!(p.payload.len(), size);
                assert_eq!(p.pkid, pkid);
                assert_eq!(p.qos as u8, qos as u8);
                assert_eq!(p.dup, pkid != 0);
                assert!(buf.is_empty());
            }
        }
    }

    #[test]
    fn offers_only_what_is_subscribed_at_the_lower_qos() {
        let mut s = SessionState::new(true, SessionLimits::default());
        s.subscribe(TopicFilter::new("a/+").unwrap(), Qos::AtMostOnce).unwrap();
        s.attach(1, Instant::now());
        assert_eq!(offer(&mut s, "b", Qos::AtLeastOnce), Offer::NotSubscribed);
        assert_eq!(offer(&mut s, "a/x", Qos::AtLeastOnce), Offer::Queued);
        let mut buf = BytesMut::new();
        assert_eq!(s.drain_into(&mut buf, Instant::now(), 100), 1);
        assert_eq!(read_publish(&mut buf).qos as u8, 0, "granted QoS 0 wins over message QoS 1");
    }

    #[test]
    fn the_highest_granted_qos_among_matching_filters_wins() {
        let mut s = SessionState::new(true, SessionLimits::default());
        s.subscribe(TopicFilter::new("a/+").unwrap(), Qos::AtMostOnce).unwrap();
        s.subscribe(TopicFilter::new("a/#").unwrap(), Qos::AtLeastOnce).unwrap();
        s.subscribe(TopicFilter::new("#").unwrap(), Qos::AtMostOnce).unwrap();
        s.attach(1, Instant::now());
        assert_eq!(offer(&mut s, "a/x", Qos::AtLeastOnce), Offer::Queued);
        let mut buf = BytesMut::new();
        s.drain_into(&mut buf, Instant::now(), 100);
        let p = read_publish(&mut buf);
        assert_eq!(p.qos as u8, 1);
        assert!(buf.is_empty(), "one copy, however many filters match");
    }

    #[test]
    fn subscriptions_are_bounded_but_replacing_one_is_not_refused() {
        let limits = SessionLimits { max_subscriptions: 2, ..SessionLimits::default() };
        let mut s = SessionState::new(true, limits);
        s.subscribe(TopicFilter::new("a").unwrap(), Qos::AtMostOnce).unwrap();
        s.subscribe(TopicFilter::new("b").unwrap(), Qos::AtMostOnce).unwrap();
        assert_eq!(s.subscribe(TopicFilter::new("c").unwrap(), Qos::AtMostOnce), Err(SubscribeRefused::TooMany));
        assert_eq!(s.subscribe(TopicFilter::new("a").unwrap(), Qos::AtLeastOnce), Ok(()));
        s.unsubscribe("b");
        assert_eq!(s.subscribe(TopicFilter::new("c").unwrap(), Qos::AtMostOnce), Ok(()));
        assert_eq!(s.subscriptions().len(), 2);
    }

    #[test]
    fn qos1_is_kept_until_acknowledged_and_resent_after_reconnect() {
        let mut s = subscribed(false, SessionLimits::default());
        offer(&mut s, "a/1", Qos::AtLeastOnce);
        let mut buf = BytesMut::new();
        let now = Instant::now();
        s.drain_into(&mut buf, now, 100);
        let p = read_publish(&mut buf);
        assert!(s.detach(1));
        assert_eq!(offer(&mut s, "a/2", Qos::AtMostOnce), Offer::Offline);
        assert_eq!(offer(&mut s, "a/3", Qos::AtLeastOnce), Offer::Queued);
        s.attach(2, Instant::now());
        let mut buf = BytesMut::new();
        assert_eq!(s.drain_into(&mut buf, now, 100), 2);
        let again = read_publish(&mut buf);
        assert_eq!((again.pkid, again.dup), (p.pkid, true));
        let third = read_publish(&mut buf);
        assert_eq!(&*third.topic, "a/3");
        assert!(s.acknowledge(p.pkid, || now));
        assert!(s.acknowledge(third.pkid, || now));
        assert!(!s.acknowledge(third.pkid, || now), "a second PUBACK for the same id matches nothing");
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn unacknowledged_messages_are_retried_while_connected() {
        let limits = SessionLimits { retry_after: Duration::from_secs(5), ..SessionLimits::default() };
        let mut s = subscribed(true, limits);
        offer(&mut s, "a/1", Qos::AtLeastOnce);
        let t0 = Instant::now();
        let mut buf = BytesMut::new();
        s.drain_into(&mut buf, t0, 100);
        buf.clear();
        assert_eq!(s.drain_into(&mut buf, t0 + Duration::from_secs(1), 100), 0);
        assert_eq!(s.next_retry(), Some(t0 + Duration::from_secs(5)));
        assert_eq!(s.drain_into(&mut buf, t0 + Duration::from_secs(6), 100), 1);
        assert!(read_publish(&mut buf).dup);
    }

    #[test]
    fn a_full_queue_takes_the_message_and_holds_the_publisher_at_either_qos() {
        let limits = SessionLimits { max_queued: 3, ..SessionLimits::default() };
        let mut s = subscribed(true, limits);
        assert_eq!(offer(&mut s, "a/1", Qos::AtLeastOnce), Offer::Queued);
        assert_eq!(offer(&mut s, "a/2", Qos::AtMostOnce), Offer::Queued);
        assert_eq!(offer(&mut s, "a/3", Qos::AtLeastOnce), Offer::Full, "the message that fills the queue is taken");
        assert!(!s.room_or_wait());
        // Publishers held back meanwhile each add at most the message they hold.
        assert_eq!(offer(&mut s, "a/4", Qos::AtMostOnce), Offer::Full);
        assert_eq!(s.pending(), 4);
        assert_eq!(s.counters.dropped, 0, "nothing sent to a connected device is dropped");
        assert!(!s.take_room_signal());
        let mut buf = BytesMut::new();
        s.drain_into(&mut buf, Instant::now(), 100);
        // Two QoS 0 out of the queue; two QoS 1 in flight still count.
        assert_eq!(s.pending(), 2);
        assert!(s.take_room_signal(), "the waiting publisher is woken once");
        assert!(!s.take_room_signal());
        let topics: Vec<String> = (0..4).map(|_| read_publish(&mut buf).topic.to_string()).collect();
        assert_eq!(topics, ["a/1", "a/2", "a/3", "a/4"], "in order");
    }

    #[test]
    fn a_full_queue_refuses_a_publisher_that_does_not_wait() {
        let limits = SessionLimits { max_queued: 1, ..SessionLimits::default() };
        let mut s = subscribed(true, limits);
        assert_eq!(offer(&mut s, "a/1", Qos::AtLeastOnce), Offer::Full);
        assert_eq!(s.offer(&msg("a/2", Qos::AtLeastOnce), false, Instant::now), Offer::Refused);
        assert_eq!(s.pending(), 1);
    }

    #[test]
    fn an_offline_persistent_session_keeps_qos1_up_to_its_bound_then_drops_and_counts() {
        let limits = SessionLimits { max_queued: 2, ..SessionLimits::default() };
        let mut s = subscribed(false, limits);
        s.detach(1);
        assert!(s.has_room(), "nobody connected: nobody to wait for");
        assert_eq!(offer(&mut s, "a/1", Qos::AtLeastOnce), Offer::Queued);
        assert_eq!(offer(&mut s, "a/2", Qos::AtLeastOnce), Offer::Queued);
        assert!(matches!(offer(&mut s, "a/3", Qos::AtLeastOnce), Offer::Dropped(_)));
        assert_eq!(offer(&mut s, "a/4", Qos::AtMostOnce), Offer::Offline);
        assert_eq!(s.counters.dropped, 1);
        assert_eq!(s.pending(), 2);
    }

    #[test]
    fn a_device_that_reconnects_to_a_full_session_and_stalls_is_cut() {
        // A held publisher waits on a full session; the device reconnects
        // (takeover) and acknowledges nothing: it must still be cut, or the
        // publisher would wait for ever.
        let limits = SessionLimits { max_queued: 1, ..SessionLimits::default() };
        let mut s = subscribed(false, limits);
        let t0 = Instant::now();
        assert_eq!(s.offer(&msg("a/1", Qos::AtLeastOnce), true, || t0), Offer::Full);
        assert!(!s.room_or_wait());
        s.detach(1);
        let t1 = t0 + Duration::from_secs(5);
        s.attach(2, t1);
        assert!(!s.has_room());
        assert_eq!(s.stall_deadline(), Some(t1 + limits.stall_timeout));
    }

    #[test]
    fn an_offline_session_is_cut_back_to_its_bound() {
        // Reconnecting with a full session, then stalling: the held publisher's
        // message past the bound is dropped (counted) when the device goes
        // offline, so that the session does not grow by one per reconnect.
        let limits = SessionLimits { max_queued: 2, ..SessionLimits::default() };
        let mut s = subscribed(false, limits);
        s.detach(1);
        for t in ["a/1", "a/2"] {
            assert_eq!(offer(&mut s, t, Qos::AtLeastOnce), Offer::Queued);
        }
        for conn in 2..5 {
            s.attach(conn, Instant::now());
            assert_eq!(offer(&mut s, "a/3", Qos::AtLeastOnce), Offer::Full);
            assert_eq!(s.pending(), 3);
            s.detach(conn);
            assert_eq!(s.pending(), 2);
        }
        assert_eq!(s.counters.dropped, 3);
    }

    #[test]
    fn an_offline_session_is_cut_back_to_its_bound_also_when_all_were_sent() {
        // The message past the bound was already written to the device (in
        // flight, not acknowledged) when it went offline: it is the one
        // dropped, so the offline session keeps its bound (found by fuzzing).
        let limits = SessionLimits { max_queued: 2, ..SessionLimits::default() };
        let mut s = subscribed(false, limits);
        let t0 = Instant::now();
        let mut buf = BytesMut::new();
        for (t, answer) in [("a/1", Offer::Queued), ("a/2", Offer::Full), ("a/3", Offer::Full)] {
            assert_eq!(s.offer(&msg(t, Qos::AtLeastOnce), true, || t0), answer);
        }
        s.drain_into(&mut buf, t0, 100);
        let sent: Vec<String> = (0..3).map(|_| read_publish(&mut buf).topic).collect();
        assert_eq!(sent, ["a/1", "a/2", "a/3"]);
        assert_eq!(s.pending(), 3);
        s.detach(1);
        assert_eq!(s.pending(), 2);
        assert_eq!(s.counters.dropped, 1);
        // What is kept is re-sent on reconnection: the two oldest.
        s.attach(2, t0);
        s.drain_into(&mut buf, t0, 100);
        let resent: Vec<String> = (0..2).map(|_| read_publish(&mut buf).topic).collect();
        assert_eq!(resent, ["a/1", "a/2"]);
    }

    #[test]
    fn a_stall_is_a_full_queue_without_progress_and_progress_restarts_it() {
        let limits = SessionLimits { max_queued: 2, max_inflight: 1, ..SessionLimits::default() };
        let mut s = subscribed(true, limits);
        let t0 = Instant::now();
        assert_eq!(s.stalled_since(), None);
        s.offer(&msg("a/1", Qos::AtLeastOnce), true, || t0);
        let mut buf = BytesMut::new();
        s.drain_into(&mut buf, t0, 100);
        let first = read_publish(&mut buf);
        assert_eq!(s.offer(&msg("a/2", Qos::AtLeastOnce), true, || t0), Offer::Full);
        assert_eq!(s.stalled_since(), Some(t0));
        assert_eq!(s.stall_deadline(), Some(t0 + limits.stall_timeout));
        // The device acknowledges: room, and no longer stalled.
        let t1 = t0 + Duration::from_secs(10);
        assert!(s.acknowledge(first.pkid, || t1));
        assert_eq!(s.stalled_since(), None);
        s.drain_into(&mut buf, t1, 100);
        // Full again: the stall counts from the later of filling and progress.
        assert_eq!(s.offer(&msg("a/3", Qos::AtLeastOnce), true, || t1), Offer::Full);
        assert_eq!(s.stalled_since(), Some(t1));
        s.detach(1);
        assert_eq!(s.stalled_since(), None, "an offline device is not stalled");
    }

    #[test]
    fn qos0_written_out_is_progress() {
        let limits = SessionLimits { max_queued: 1, ..SessionLimits::default() };
        let mut s = subscribed(true, limits);
        let t0 = Instant::now();
        assert_eq!(s.offer(&msg("a/1", Qos::AtMostOnce), true, || t0), Offer::Full);
        assert!(s.stalled_since().is_some());
        let mut buf = BytesMut::new();
        s.drain_into(&mut buf, t0 + Duration::from_secs(1), 100);
        assert_eq!(s.stalled_since(), None);
        assert!(s.has_room());
    }

    #[test]
    fn inflight_window_holds_back_qos1_but_not_qos0() {
        let limits = SessionLimits { max_inflight: 1, ..SessionLimits::default() };
        let mut s = subscribed(true, limits);
        offer(&mut s, "a/1", Qos::AtLeastOnce);
        offer(&mut s, "a/2", Qos::AtLeastOnce);
        let mut buf = BytesMut::new();
        assert_eq!(s.drain_into(&mut buf, Instant::now(), 100), 1);
        assert!(!s.has_work());
        let p = read_publish(&mut buf);
        s.acknowledge(p.pkid, Instant::now);
        assert!(s.has_work());
    }
}

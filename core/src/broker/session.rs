//! A device's MQTT session: granted subscriptions, the outgoing queue and the
//! QoS 1 messages in flight. Plain data changed by methods that never touch a
//! socket; the connection's writer drains it.
//!
//! Bounds (SPEC §7): queued + in-flight messages are limited to
//! [`SessionLimits::max_queued`]. QoS 0 overflow is dropped and counted; a QoS 1
//! overflow marks the session so that its connection is closed (the session and
//! its messages are kept, up to twice the limit, beyond which the newest are
//! dropped and counted).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

use crate::router::{Message, Qos};
use crate::topic::TopicFilter;

/// A QoS 1 session over its limit is cut only when its device has acknowledged
/// nothing for this long.
pub const SLOW_READER_AFTER: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Queued plus in-flight messages before overflow handling starts.
    pub max_queued: usize,
    /// QoS 1 messages sent and not yet acknowledged.
    pub max_inflight: usize,
    /// Unacknowledged QoS 1 messages are sent again (DUP) after this long.
    pub retry_after: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self { max_queued: 1000, max_inflight: 128, retry_after: Duration::from_secs(30) }
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
    /// No granted filter matches the topic.
    NotSubscribed,
    /// The device is offline and the message is QoS 0 (not kept, as MQTT says).
    Offline,
    /// Dropped: over the limit.
    Dropped(&'static str),
    /// Queued, but the QoS 1 queue overflowed: the connection must be closed.
    Overflow,
}

#[derive(Debug, Default)]
pub struct SessionCounters {
    pub dropped: u64,
    pub delivered: u64,
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
    /// Connection currently attached, if any.
    pub attached: Option<u64>,
    /// Set on QoS 1 overflow; the writer closes the connection.
    pub overflowed: bool,
    /// In-flight messages must be sent again (after a reconnect).
    resend: bool,
    /// When the device last acknowledged a message on this connection: a
    /// backlog that is being worked off is not a slow reader.
    last_progress: Option<Instant>,
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
            attached: None,
            overflowed: false,
            resend: false,
            last_progress: None,
            counters: SessionCounters::default(),
        }
    }

    pub fn subscriptions(&self) -> &[(TopicFilter, Qos)] {
        &self.subscriptions
    }

    /// Adds or replaces a granted subscription.
    pub fn subscribe(&mut self, filter: TopicFilter, qos: Qos) {
        match self.subscriptions.iter_mut().find(|(f, _)| *f == filter) {
            Some(entry) => entry.1 = qos,
            None => self.subscriptions.push((filter, qos)),
        }
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
        self.subscriptions.iter().filter(|(f, _)| f.matches(topic)).map(|(_, q)| *q).max()
    }

    pub fn pending(&self) -> usize {
        self.queue.len() + self.inflight.len()
    }

    /// Offers a routed message to this session.
    pub fn offer(&mut self, msg: &Message) -> Offer {
        let Some(granted) = self.granted_qos(&msg.topic) else {
            return Offer::NotSubscribed;
        };
        let qos = granted.min(msg.qos);
        if self.attached.is_none() && (self.clean || qos == Qos::AtMostOnce) {
            // Nobody to send QoS 0 to; clean sessions end with their connection.
            return Offer::Offline;
        }
        let out = Outgoing { topic: msg.topic.clone(), payload: msg.payload.clone(), qos };
        let pending = self.pending();
        if pending >= self.limits.max_queued {
            if qos == Qos::AtMostOnce {
                self.counters.dropped += 1;
                return Offer::Dropped("device queue full (QoS 0)");
            }
            if self.attached.is_none() || pending >= 2 * self.limits.max_queued {
                self.counters.dropped += 1;
                return Offer::Dropped("device session full (QoS 1)");
            }
            self.queue.push_back(out);
            // A device that keeps acknowledging is working off a backlog (after a
            // reconnect, say); only one that stopped is a slow reader to cut.
            if self.last_progress.is_some_and(|t| t.elapsed() < SLOW_READER_AFTER) {
                return Offer::Queued;
            }
            self.overflowed = true;
            return Offer::Overflow;
        }
        self.queue.push_back(out);
        Offer::Queued
    }

    /// Queues an encoded control packet (PUBACK, SUBACK, PINGRESP, ...).
    pub fn push_control(&mut self, encoded: &[u8]) {
        self.control.extend_from_slice(encoded);
    }

    /// Marks a connection attached; in-flight messages will be sent again.
    pub fn attach(&mut self, conn: u64) {
        self.attached = Some(conn);
        self.last_progress = None;
        self.overflowed = false;
        self.resend = !self.inflight.is_empty();
        self.control.clear();
    }

    /// Detaches `conn` if it is the attached one; returns whether it was.
    pub fn detach(&mut self, conn: u64) -> bool {
        if self.attached == Some(conn) {
            self.attached = None;
            if self.clean {
                self.queue.clear();
                self.inflight.clear();
            } else {
                // QoS 0 messages are not kept for an offline device.
                self.queue.retain(|m| m.qos == Qos::AtLeastOnce);
            }
            self.control.clear();
            true
        } else {
            false
        }
    }

    /// A PUBACK arrived for `pkid`.
    pub fn acknowledge(&mut self, pkid: u16) -> bool {
        match self.inflight.iter().position(|f| f.pkid == pkid) {
            Some(i) => {
                self.inflight.remove(i);
                self.counters.delivered += 1;
                self.last_progress = Some(Instant::now());
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
                }
                Qos::AtLeastOnce => {
                    let pkid = self.alloc_pkid();
                    encode_publish(buf, &msg.topic, &msg.payload, Qos::AtLeastOnce, pkid, false);
                    self.inflight.push_back(InFlight { pkid, msg, sent_at: now });
                }
            }
            n += 1;
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
        s.subscribe(TopicFilter::new("a/#").unwrap(), Qos::AtLeastOnce);
        s.attach(1);
        s
    }

    #[test]
    fn encoded_publish_parses_back() {
        for (qos, pkid) in [(Qos::AtMostOnce, 0), (Qos::AtLeastOnce, 7)] {
            for size in [0usize, 5, 200, 20_000] {
                let payload = vec![0xabu8; size];
                let mut buf = BytesMut::new();
                encode_publish(&mut buf, "$aws/things/x/shadow/get", &payload, qos, pkid, pkid != 0);
                let Packet::Publish(p) = Packet::read(&mut buf, 1 << 20).unwrap() else { panic!("not a publish") };
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
        s.subscribe(TopicFilter::new("a/+").unwrap(), Qos::AtMostOnce);
        s.attach(1);
        assert_eq!(s.offer(&msg("b", Qos::AtLeastOnce)), Offer::NotSubscribed);
        assert_eq!(s.offer(&msg("a/x", Qos::AtLeastOnce)), Offer::Queued);
        let mut buf = BytesMut::new();
        assert_eq!(s.drain_into(&mut buf, Instant::now(), 100), 1);
        let Packet::Publish(p) = Packet::read(&mut buf, 1 << 20).unwrap() else { panic!() };
        assert_eq!(p.qos as u8, 0, "granted QoS 0 wins over message QoS 1");
    }

    #[test]
    fn qos1_is_kept_until_acknowledged_and_resent_after_reconnect() {
        let mut s = subscribed(false, SessionLimits::default());
        s.offer(&msg("a/1", Qos::AtLeastOnce));
        let mut buf = BytesMut::new();
        let now = Instant::now();
        s.drain_into(&mut buf, now, 100);
        let Packet::Publish(p) = Packet::read(&mut buf, 1 << 20).unwrap() else { panic!() };
        assert!(s.detach(1));
        assert_eq!(s.offer(&msg("a/2", Qos::AtMostOnce)), Offer::Offline);
        assert_eq!(s.offer(&msg("a/3", Qos::AtLeastOnce)), Offer::Queued);
        s.attach(2);
        let mut buf = BytesMut::new();
        assert_eq!(s.drain_into(&mut buf, now, 100), 2);
        let Packet::Publish(again) = Packet::read(&mut buf, 1 << 20).unwrap() else { panic!() };
        assert_eq!((again.pkid, again.dup), (p.pkid, true));
        let Packet::Publish(third) = Packet::read(&mut buf, 1 << 20).unwrap() else { panic!() };
        assert_eq!(&*third.topic, "a/3");
        assert!(s.acknowledge(p.pkid));
        assert!(s.acknowledge(third.pkid));
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn unacknowledged_messages_are_retried_while_connected() {
        let limits = SessionLimits { retry_after: Duration::from_secs(5), ..SessionLimits::default() };
        let mut s = subscribed(true, limits);
        s.offer(&msg("a/1", Qos::AtLeastOnce));
        let t0 = Instant::now();
        let mut buf = BytesMut::new();
        s.drain_into(&mut buf, t0, 100);
        buf.clear();
        assert_eq!(s.drain_into(&mut buf, t0 + Duration::from_secs(1), 100), 0);
        assert_eq!(s.next_retry(), Some(t0 + Duration::from_secs(5)));
        assert_eq!(s.drain_into(&mut buf, t0 + Duration::from_secs(6), 100), 1);
        let Packet::Publish(p) = Packet::read(&mut buf, 1 << 20).unwrap() else { panic!() };
        assert!(p.dup);
    }

    #[test]
    fn overflow_drops_qos0_and_flags_qos1() {
        let limits = SessionLimits { max_queued: 2, ..SessionLimits::default() };
        let mut s = subscribed(true, limits);
        s.offer(&msg("a/1", Qos::AtLeastOnce));
        s.offer(&msg("a/2", Qos::AtLeastOnce));
        assert_eq!(s.offer(&msg("a/3", Qos::AtMostOnce)), Offer::Dropped("device queue full (QoS 0)"));
        assert_eq!(s.offer(&msg("a/4", Qos::AtLeastOnce)), Offer::Overflow);
        assert!(s.overflowed);
        assert_eq!(s.offer(&msg("a/5", Qos::AtLeastOnce)), Offer::Overflow);
        assert!(matches!(s.offer(&msg("a/6", Qos::AtLeastOnce)), Offer::Dropped(_)));
        assert_eq!(s.counters.dropped, 2);
    }

    #[test]
    fn a_backlog_being_acknowledged_is_not_a_slow_reader() {
        let limits = SessionLimits { max_queued: 2, ..SessionLimits::default() };
        let mut s = subscribed(false, limits);
        s.offer(&msg("a/1", Qos::AtLeastOnce));
        let mut buf = BytesMut::new();
        s.drain_into(&mut buf, Instant::now(), 100);
        let Packet::Publish(p) = Packet::read(&mut buf, 1 << 20).unwrap() else { panic!() };
        s.acknowledge(p.pkid);
        s.offer(&msg("a/2", Qos::AtLeastOnce));
        s.offer(&msg("a/2b", Qos::AtLeastOnce));
        assert_eq!(s.offer(&msg("a/3", Qos::AtLeastOnce)), Offer::Queued, "acknowledging: working off the backlog");
        assert!(!s.overflowed);
        s.offer(&msg("a/4", Qos::AtLeastOnce));
        assert!(matches!(s.offer(&msg("a/5", Qos::AtLeastOnce)), Offer::Dropped(_)), "the hard cap still holds");
    }

    #[test]
    fn inflight_window_holds_back_qos1_but_not_qos0() {
        let limits = SessionLimits { max_inflight: 1, ..SessionLimits::default() };
        let mut s = subscribed(true, limits);
        s.offer(&msg("a/1", Qos::AtLeastOnce));
        s.offer(&msg("a/2", Qos::AtLeastOnce));
        let mut buf = BytesMut::new();
        assert_eq!(s.drain_into(&mut buf, Instant::now(), 100), 1);
        assert!(!s.has_work());
        let Packet::Publish(p) = Packet::read(&mut buf, 1 << 20).unwrap() else { panic!() };
        s.acknowledge(p.pkid);
        assert!(s.has_work());
    }
}

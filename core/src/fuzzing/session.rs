//! A device's session state machine (`broker::session`) fed the packets of a
//! decoded stream, next to a model of what it owes the device.
//!
//! The first byte sets the limits (small, so that they are reached) and the
//! session's first clean flag. Then each packet drives the session:
//! CONNECT attaches (taking over, keeping or replacing the session as the hub
//! does), DISCONNECT detaches, SUBSCRIBE/UNSUBSCRIBE change the grants,
//! PUBLISH is a message routed *to* this device (offered, as other publishers'
//! messages are), PUBACK acknowledges, PINGREQ and PUBREL run the writer
//! (drain), PUBREC lets time pass (retries), PUBCOMP revokes grants as a
//! redeploy does. Checked after every step: queued + in flight within the
//! limits, packet ids unique and acknowledged once, retries when due, no drop
//! below the limit, and every accepted message delivered, pending or
//! discarded by a detach (never silently lost); at the end, a device that
//! keeps reading and acknowledging receives everything pending.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{Packet, PubAck};
use rumqttc::mqttbytes::QoS;

use crate::broker::session::{Offer, SessionLimits, SessionState};
use crate::router::{Message, Qos};
use crate::topic::{filter_matches, validate_topic, TopicFilter};

const RETRY: Duration = Duration::from_secs(5);
const MAX_PACKET: usize = 64 * 1024;
const MAX_STEPS: usize = 2000;

pub fn mqtt_session(data: &[u8]) {
    let Some((&setup, stream)) = data.split_first() else { return };
    let limits =
        SessionLimits { max_queued: 1 + (setup & 0x07) as usize, max_inflight: 1 + ((setup >> 3) & 0x03) as usize, retry_after: RETRY };
    let mut h = Harness::new(limits, setup & 0x80 != 0);
    let mut buf = BytesMut::from(stream);
    for _ in 0..MAX_STEPS {
        let Ok(packet) = Packet::read(&mut buf, MAX_PACKET) else { break };
        h.step(packet);
        h.check();
    }
    h.finish();
}

fn qos_of(q: QoS) -> Qos {
    if q == QoS::AtMostOnce {
        Qos::AtMostOnce
    } else {
        Qos::AtLeastOnce
    }
}

struct Harness {
    limits: SessionLimits,
    state: SessionState,
    conn: u64,
    attached: bool,
    now: Instant,
    // The model.
    subscriptions: Vec<(String, Qos)>,
    /// Packet ids sent and not acknowledged, with when they were last sent.
    inflight: BTreeMap<u16, Instant>,
    /// Every in-flight message is sent again on the first drain after an attach.
    resend_due: bool,
    /// Acknowledgements queued for the writer.
    control_acks: usize,
    accepted: u64,
    discarded: u64,
    dropped: u64,
}

impl Harness {
    fn new(limits: SessionLimits, clean: bool) -> Self {
        let mut state = SessionState::new(clean, limits);
        state.attach(1);
        Self {
            limits,
            state,
            conn: 1,
            attached: true,
            now: Instant::now(),
            subscriptions: Vec::new(),
            inflight: BTreeMap::new(),
            resend_due: false,
            control_acks: 0,
            accepted: 0,
            discarded: 0,
            dropped: 0,
        }
    }

    fn step(&mut self, packet: Packet) {
        match packet {
            Packet::Connect(c) => self.connect(c.clean_session),
            Packet::Publish(p) => self.offer(&p.topic, p.payload, p.qos),
            // Everything else comes from the device, over its connection.
            _ if !self.attached => {}
            Packet::Disconnect => self.detach(),
            Packet::Subscribe(s) => {
                for f in &s.filters {
                    let Ok(filter) = TopicFilter::new(&f.path) else { continue };
                    let qos = qos_of(f.qos);
                    self.state.subscribe(filter, qos);
                    match self.subscriptions.iter_mut().find(|(p, _)| *p == f.path) {
                        Some(entry) => entry.1 = qos,
                        None => self.subscriptions.push((f.path.clone(), qos)),
                    }
                }
            }
            Packet::Unsubscribe(u) => {
                for t in &u.topics {
                    self.state.unsubscribe(t);
                    self.subscriptions.retain(|(p, _)| p != t);
                }
            }
            Packet::PubAck(a) => {
                let expected = self.inflight.remove(&a.pkid).is_some();
                assert_eq!(self.state.acknowledge(a.pkid), expected, "PUBACK {}", a.pkid);
            }
            Packet::PingReq => self.drain(usize::MAX),
            Packet::PubRel(r) => self.drain(r.pkid as usize % 8),
            Packet::PubRec(r) => self.now += Duration::from_secs(r.pkid as u64 % 64),
            Packet::PubComp(c) => {
                // A redeploy keeps only the grants the new table gives.
                let keep = |f: &str| f.len() % 2 == c.pkid as usize % 2;
                let revoked = self.state.retain_subscriptions(|f| keep(f.as_str()));
                let before = self.subscriptions.len();
                self.subscriptions.retain(|(f, _)| keep(f));
                assert_eq!(revoked, before - self.subscriptions.len());
            }
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {}
        }
    }

    /// As the hub attaches a connection: an attached one is taken over; the
    /// session is kept only when neither side asks for a clean one.
    fn connect(&mut self, clean: bool) {
        if self.attached {
            self.detach();
        }
        if clean || self.state.clean {
            self.state = SessionState::new(clean, self.limits);
            self.subscriptions.clear();
            self.inflight.clear();
            (self.accepted, self.discarded, self.dropped) = (0, 0, 0);
        }
        self.conn += 1;
        self.state.attach(self.conn);
        self.attached = true;
        self.resend_due = !self.inflight.is_empty();
        self.control_acks = 0;
    }

    fn detach(&mut self) {
        assert!(!self.state.detach(self.conn + 1000), "a connection that is not attached detached the session");
        let before = self.state.pending();
        assert!(self.state.detach(self.conn), "the attached connection could not detach");
        self.attached = false;
        self.control_acks = 0;
        let after = self.state.pending();
        assert!(after <= before);
        self.discarded += (before - after) as u64;
        if self.state.clean {
            assert_eq!(after, 0, "a clean session kept messages after its connection ended");
            self.inflight.clear();
        }
    }

    /// A message some publisher routed to this device.
    fn offer(&mut self, topic: &str, payload: bytes::Bytes, qos: QoS) {
        if validate_topic(topic).is_err() {
            return;
        }
        if self.attached && qos != QoS::AtMostOnce {
            // The reader acknowledges the device's own publish meanwhile.
            let mut ack = BytesMut::new();
            let _ = Packet::PubAck(PubAck::new(1)).write(&mut ack, usize::MAX);
            self.state.push_control(&ack);
            self.control_acks += 1;
        }
        let msg = Message { topic: Arc::from(topic), payload, qos: qos_of(qos) };
        let granted = self.subscriptions.iter().filter(|(f, _)| filter_matches(f, topic)).map(|(_, q)| *q).max();
        let before = self.state.pending();
        let offer = self.state.offer(&msg);
        let Some(granted) = granted else {
            assert_eq!(offer, Offer::NotSubscribed, "{topic} matches no subscription");
            return;
        };
        let qos = granted.min(msg.qos);
        match offer {
            Offer::NotSubscribed => panic!("{topic} is subscribed (QoS {granted:?}) but was refused as not subscribed"),
            Offer::Offline => assert!(!self.attached && (self.state.clean || qos == Qos::AtMostOnce), "offline while it should be kept"),
            Offer::Queued | Offer::Overflow => {
                self.accepted += 1;
                assert_eq!(self.state.pending(), before + 1);
                if offer == Offer::Overflow {
                    assert!(before >= self.limits.max_queued && self.state.overflowed);
                    // The writer closes the connection of a slow reader.
                    self.detach();
                }
            }
            Offer::Dropped(reason) => {
                assert!(!reason.is_empty());
                assert!(before >= self.limits.max_queued, "dropped ({reason}) with {before} pending, under the limit");
                assert_eq!(self.state.pending(), before);
                self.dropped += 1;
            }
        }
    }

    /// Runs the writer once: what is due must be sent, nothing twice at once.
    fn drain(&mut self, batch: usize) {
        let mut due: BTreeSet<u16> = if self.resend_due {
            self.inflight.keys().copied().collect()
        } else {
            self.inflight.iter().filter(|(_, sent)| self.now.duration_since(**sent) >= RETRY).map(|(id, _)| *id).collect()
        };
        self.resend_due = false;
        let delivered_before = self.state.counters.delivered;
        let mut out = BytesMut::new();
        let n = self.state.drain_into(&mut out, self.now, batch);
        let (mut acks, mut resent, mut new, mut qos0) = (0, 0, 0, 0);
        while !out.is_empty() {
            let packet = Packet::read(&mut out, usize::MAX).unwrap_or_else(|e| panic!("the writer produced bytes that do not decode: {e}"));
            match packet {
                Packet::PubAck(_) => {
                    assert_eq!(resent + new + qos0, 0, "acknowledgements follow publishes");
                    acks += 1;
                }
                Packet::Publish(p) => {
                    assert!(validate_topic(&p.topic).is_ok() && !p.retain);
                    match p.qos {
                        QoS::AtMostOnce => {
                            assert!(!p.dup && p.pkid == 0);
                            qos0 += 1;
                        }
                        QoS::AtLeastOnce if p.dup => {
                            assert!(due.remove(&p.pkid), "packet id {} sent again before it was due", p.pkid);
                            self.inflight.insert(p.pkid, self.now);
                            resent += 1;
                        }
                        QoS::AtLeastOnce => {
                            assert_ne!(p.pkid, 0);
                            assert!(self.inflight.insert(p.pkid, self.now).is_none(), "packet id {} is already in flight", p.pkid);
                            new += 1;
                        }
                        QoS::ExactlyOnce => panic!("QoS 2 sent to a device"),
                    }
                }
                other => panic!("the writer sent {other:?}"),
            }
        }
        assert_eq!(acks, self.control_acks, "acknowledgements lost or repeated");
        self.control_acks = 0;
        assert!(due.is_empty(), "packet ids {due:?} were due and not sent again");
        assert_eq!(n, resent + new + qos0);
        assert!(new + qos0 <= batch.saturating_sub(resent), "{} new messages in a batch of {batch}", new + qos0);
        assert_eq!(self.state.counters.delivered, delivered_before + qos0 as u64);
        if batch == usize::MAX {
            assert!(!self.state.has_work(), "work left after an unbounded drain");
        }
    }

    fn check(&self) {
        let pending = self.state.pending();
        assert!(pending <= 2 * self.limits.max_queued, "{pending} pending, over twice the limit");
        assert!(self.inflight.len() <= self.limits.max_inflight, "{} in flight", self.inflight.len());
        assert!(self.inflight.len() <= pending);
        assert_eq!(self.state.attached, self.attached.then_some(self.conn));
        let mut granted: Vec<(&str, Qos)> = self.state.subscriptions().iter().map(|(f, q)| (f.as_str(), *q)).collect();
        let mut model: Vec<(&str, Qos)> = self.subscriptions.iter().map(|(f, q)| (f.as_str(), *q)).collect();
        granted.sort();
        model.sort();
        assert_eq!(granted, model, "subscriptions");
        let c = &self.state.counters;
        assert_eq!(c.dropped, self.dropped);
        assert_eq!(self.accepted, c.delivered + pending as u64 + self.discarded, "an accepted message went missing");
        assert_eq!(self.state.next_retry(), self.inflight.values().min().map(|t| *t + RETRY));
    }

    /// A device that reconnects (when its session is kept) and then reads and
    /// acknowledges everything receives every pending message.
    fn finish(&mut self) {
        if !self.attached {
            if self.state.clean {
                assert_eq!(self.state.pending(), 0);
                return;
            }
            self.connect(false);
        }
        for _ in 0..=2 * self.limits.max_queued + 1 {
            self.drain(usize::MAX);
            for id in std::mem::take(&mut self.inflight).into_keys() {
                assert!(self.state.acknowledge(id));
            }
            if self.state.pending() == 0 {
                break;
            }
        }
        assert_eq!(self.state.pending(), 0, "messages stuck in a session whose device reads everything");
        self.check();
    }
}

//! A device's session state machine (`broker::session`) fed the packets of a
//! decoded stream, next to a model of what it owes the device and its
//! publishers (docs/mqtt.md, "Flow control").
//!
//! The first byte sets the limits (small, so that they are reached) and the
//! session's first clean flag. Each packet then drives the session as the
//! broker's parts do: CONNECT attaches (taking over, keeping or replacing the
//! session as the hub does), DISCONNECT detaches, SUBSCRIBE/UNSUBSCRIBE change
//! the grants, PUBACK acknowledges (the reader), PINGREQ and PUBREL run the
//! writer (drain), PUBREC lets time pass (retries, stall timeout), PUBCOMP
//! revokes grants as a redeploy does. A PUBLISH is a message routed *to* this
//! device by one of two publishers: one that waits when the queue is full
//! (retain flag clear; held back until the session has room, its later
//! messages waiting unread meanwhile) and one that does not (retain set).
//!
//! Checked after every step: queued + in flight within the bound; packet ids
//! unique and acknowledged once; retries when due; nothing dropped while the
//! device is connected, and offline only beyond the bound; every accepted
//! message delivered, pending, or discarded by a detach (QoS 0, clean
//! sessions, and, counted, what is past the offline bound): never silently
//! lost; a held publisher is woken once there is room; a device that makes
//! progress is not cut, one that stalls with a publisher held is. At the end,
//! a device that reads and acknowledges everything receives everything the
//! publishers sent it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{Packet, PubAck};
use rumqttc::mqttbytes::QoS;

use crate::broker::session::{Offer, SessionLimits, SessionState, SubscribeRefused};
use crate::router::{Message, Qos};
use crate::topic::{filter_matches, validate_topic, TopicFilter};

const RETRY: Duration = Duration::from_secs(5);
const STALL: Duration = Duration::from_secs(20);
const MAX_PACKET: usize = 64 * 1024;
const MAX_STEPS: usize = 2000;

pub fn mqtt_session(data: &[u8]) {
    let Some((&setup, stream)) = data.split_first() else { return };
    let limits = SessionLimits {
        max_queued: 1 + (setup & 0x07) as usize,
        max_inflight: 1 + ((setup >> 3) & 0x03) as usize,
        retry_after: RETRY,
        stall_timeout: STALL,
        max_subscriptions: 1 + ((setup >> 5) & 0x03) as usize,
    };
    let mut h = Harness::new(limits, setup & 0x80 != 0);
    let mut buf = BytesMut::from(stream);
    let trace = std::env::var_os("GGCORE_FUZZ_TRACE").is_some();
    for _ in 0..MAX_STEPS {
        let Ok(packet) = Packet::read(&mut buf, MAX_PACKET) else { break };
        if trace {
            eprintln!("{packet:?}");
        }
        h.step(packet);
        h.after_step();
        if trace {
            eprintln!("  -> pending {} attached {} held {} backlog {}", h.state.pending(), h.attached, h.held, h.backlog.len());
        }
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
    /// The waiting publisher is held back, and what it sends meanwhile.
    held: bool,
    backlog: VecDeque<Message>,
    accepted: u64,
    discarded: u64,
    dropped: u64,
    fulls: u64,
}

impl Harness {
    fn new(limits: SessionLimits, clean: bool) -> Self {
        let now = Instant::now();
        let mut state = SessionState::new(clean, limits);
        state.attach(1, now);
        Self {
            limits,
            state,
            conn: 1,
            attached: true,
            now,
            subscriptions: Vec::new(),
            inflight: BTreeMap::new(),
            resend_due: false,
            control_acks: 0,
            held: false,
            backlog: VecDeque::new(),
            accepted: 0,
            discarded: 0,
            dropped: 0,
            fulls: 0,
        }
    }

    fn step(&mut self, packet: Packet) {
        match packet {
            Packet::Connect(c) => self.connect(c.clean_session),
            Packet::Publish(p) => {
                if validate_topic(&p.topic).is_err() {
                    return;
                }
                if self.attached && p.qos != QoS::AtMostOnce {
                    // The reader acknowledges the device's own publish meanwhile.
                    let mut ack = BytesMut::new();
                    let _ = Packet::PubAck(PubAck::new(1)).write(&mut ack, usize::MAX);
                    self.state.push_control(&ack);
                    self.control_acks += 1;
                }
                let msg = Message { topic: Arc::from(p.topic.as_str()), payload: p.payload, qos: qos_of(p.qos) };
                match (p.retain, self.held) {
                    (true, _) => self.offer(&msg, false),
                    (false, true) => self.backlog.push_back(msg),
                    (false, false) => self.offer(&msg, true),
                }
            }
            // Everything else comes from the device, over its connection.
            _ if !self.attached => {}
            Packet::Disconnect => self.detach(),
            Packet::Subscribe(s) => self.subscribe(&s.filters.iter().map(|f| (f.path.clone(), qos_of(f.qos))).collect::<Vec<_>>()),
            Packet::Unsubscribe(u) => {
                for t in &u.topics {
                    self.state.unsubscribe(t);
                    self.subscriptions.retain(|(p, _)| p != t);
                }
            }
            Packet::PubAck(a) => {
                let expected = self.inflight.remove(&a.pkid).is_some();
                let now = self.now;
                assert_eq!(self.state.acknowledge(a.pkid, || now), expected, "PUBACK {}", a.pkid);
                if expected {
                    self.progressed();
                }
                self.signal_room();
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

    fn subscribe(&mut self, filters: &[(String, Qos)]) {
        for (path, qos) in filters {
            let Ok(filter) = TopicFilter::new(path) else { continue };
            let got = self.state.subscribe(filter, *qos);
            let held = self.subscriptions.len();
            match self.subscriptions.iter_mut().find(|(p, _)| p == path) {
                Some(entry) => {
                    assert_eq!(got, Ok(()), "replacing {path} was refused");
                    entry.1 = *qos;
                }
                None if held >= self.limits.max_subscriptions => {
                    assert_eq!(got, Err(SubscribeRefused::TooMany), "{path} granted past the bound");
                }
                None => {
                    assert_eq!(got, Ok(()), "{path} refused under the bound");
                    self.subscriptions.push((path.clone(), *qos));
                }
            }
        }
    }

    /// As the hub attaches a connection: an attached one is taken over; the
    /// session is kept only when neither side asks for a clean one.
    fn connect(&mut self, clean: bool) {
        // A takeover detaches and attaches under the hub's lock: a held
        // publisher woken by the detach looks for room only after the attach.
        let was_held = self.held;
        if self.attached {
            self.detach();
        }
        if clean || self.state.clean {
            self.state = SessionState::new(clean, self.limits);
            self.subscriptions.clear();
            self.inflight.clear();
            (self.accepted, self.discarded, self.dropped, self.fulls) = (0, 0, 0, 0);
        }
        self.conn += 1;
        self.state.attach(self.conn, self.now);
        self.attached = true;
        self.resend_due = !self.inflight.is_empty();
        self.control_acks = 0;
        if was_held && !self.state.room_or_wait() {
            self.held = true;
        }
    }

    /// The connection ends (DISCONNECT, takeover, stall): the hub detaches and
    /// wakes held publishers, for an offline session holds nobody back.
    fn detach(&mut self) {
        assert!(!self.state.detach(self.conn + 1000), "a connection that is not attached detached the session");
        let before = self.state.pending();
        let dropped_before = self.state.counters.dropped;
        assert!(self.state.detach(self.conn), "the attached connection could not detach");
        self.attached = false;
        self.control_acks = 0;
        let after = self.state.pending();
        assert!(after <= before);
        // QoS 0 messages, a clean session's messages, and (counted as
        // dropped) those past the offline bound.
        self.discarded += (before - after) as u64;
        self.dropped += self.state.counters.dropped - dropped_before;
        assert!(after <= self.limits.max_queued, "{after} pending in an offline session, over the bound");
        if !self.state.clean {
            // Cutting back to the bound may drop messages already in flight
            // (the newest sent); the rest stay in flight, to be sent again.
            let kept: Vec<u16> = self.state.inflight_ids().collect();
            let sent_before = self.inflight.len();
            self.inflight.retain(|id, _| kept.contains(id));
            assert_eq!(self.inflight.len(), kept.len(), "the session kept in flight a message never sent");
            assert!((sent_before - kept.len()) as u64 <= self.state.counters.dropped - dropped_before);
        }
        if self.state.clean {
            assert_eq!(after, 0, "a clean session kept messages after its connection ended");
            self.inflight.clear();
        }
        assert!(self.state.has_room(), "an offline session holds publishers back");
        assert_eq!(self.state.stalled_since(), None);
        self.held = false;
    }

    /// A message a publisher routes to this device; `hold`: it waits when full.
    fn offer(&mut self, msg: &Message, hold: bool) {
        let granted = self.subscriptions.iter().filter(|(f, _)| filter_matches(f, &msg.topic)).map(|(_, q)| *q).max();
        let before = self.state.pending();
        let now = self.now;
        let offer = self.state.offer(msg, hold, || now);
        let Some(granted) = granted else {
            assert_eq!(offer, Offer::NotSubscribed, "{} matches no subscription", msg.topic);
            return;
        };
        let qos = granted.min(msg.qos);
        let max = self.limits.max_queued;
        match offer {
            Offer::NotSubscribed => panic!("{} is subscribed (QoS {granted:?}) but was refused as not subscribed", msg.topic),
            Offer::Offline => assert!(!self.attached && (self.state.clean || qos == Qos::AtMostOnce), "offline while it should be kept"),
            Offer::Dropped(reason) => {
                assert!(!reason.is_empty());
                assert!(!self.attached, "dropped ({reason}) while the device is connected");
                assert!(before >= max, "dropped ({reason}) with {before} pending, under the bound");
                assert_eq!(self.state.pending(), before);
                self.dropped += 1;
            }
            Offer::Refused => {
                assert!(self.attached && !hold && before >= max, "refused with {before} pending (hold {hold})");
                assert_eq!(self.state.pending(), before);
            }
            Offer::Queued => {
                self.accepted += 1;
                assert_eq!(self.state.pending(), before + 1);
                assert!(!self.attached || before + 1 < max, "the queue reached its bound and nobody is held back");
            }
            Offer::Full => {
                self.accepted += 1;
                self.fulls += 1;
                assert_eq!(self.state.pending(), before + 1);
                assert!(self.attached && before + 1 >= max, "full with {} pending", before + 1);
                // As the router holds the publisher: until the session has room.
                if hold && !self.state.room_or_wait() {
                    self.held = true;
                }
            }
        }
    }

    /// The device made progress while the queue may be full: it is not
    /// stalled before a whole stall timeout from now.
    fn progressed(&self) {
        if let Some(deadline) = self.state.stall_deadline() {
            assert!(deadline >= self.now + STALL, "a device that just made progress is cut before the stall timeout");
        }
    }

    /// Wakes the held publisher if the session says so (after an
    /// acknowledgement or a drain, as the reader and the writer do).
    fn signal_room(&mut self) {
        if self.state.take_room_signal() {
            assert!(self.state.has_room());
            self.held = false;
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
        if qos0 > 0 {
            self.progressed();
        }
        self.signal_room();
    }

    /// What follows every step: the writer cuts a stalled device; a released
    /// publisher sends what it held; then the invariants.
    fn after_step(&mut self) {
        if self.attached && self.state.stall_deadline().is_some_and(|d| self.now >= d) {
            self.detach();
        }
        while !self.held {
            let Some(msg) = self.backlog.pop_front() else { break };
            self.offer(&msg, true);
        }
        self.check();
    }

    fn check(&self) {
        let pending = self.state.pending();
        // One waiting publisher may add one message past the bound (a
        // reconnect with a full session); offline sessions stop at it.
        assert!(pending <= self.limits.max_queued + 1, "{pending} pending, over the bound");
        assert!(self.inflight.len() <= self.limits.max_inflight, "{} in flight", self.inflight.len());
        assert!(self.inflight.len() <= pending);
        assert_eq!(self.state.attached, self.attached.then_some(self.conn));
        if self.held {
            assert!(!self.state.has_room(), "a publisher is held back while the session has room");
            assert!(self.state.stall_deadline().is_some(), "a publisher is held back by a device that is never cut");
        }
        if self.state.stalled_since().is_some() {
            assert!(self.attached && pending >= self.limits.max_queued);
        }
        let mut granted: Vec<(&str, Qos)> = self.state.subscriptions().iter().map(|(f, q)| (f.as_str(), *q)).collect();
        let mut model: Vec<(&str, Qos)> = self.subscriptions.iter().map(|(f, q)| (f.as_str(), *q)).collect();
        granted.sort();
        model.sort();
        assert_eq!(granted, model, "subscriptions");
        let c = &self.state.counters;
        assert_eq!((c.dropped, c.held), (self.dropped, self.fulls));
        assert_eq!(self.accepted, c.delivered + pending as u64 + self.discarded, "an accepted message went missing");
        assert_eq!(self.state.next_retry(), self.inflight.values().min().map(|t| *t + RETRY));
    }

    /// A device that reconnects (when its session is kept) and then reads and
    /// acknowledges everything receives every pending message, and the held
    /// publisher gets to send everything it had.
    fn finish(&mut self) {
        if !self.attached {
            if self.state.clean && self.backlog.is_empty() {
                assert_eq!(self.state.pending(), 0);
                return;
            }
            self.connect(false);
        }
        let rounds = 2 * (self.limits.max_queued + 1) * (self.backlog.len() + 1) + 2;
        for _ in 0..rounds {
            self.drain(usize::MAX);
            for id in std::mem::take(&mut self.inflight).into_keys() {
                let now = self.now;
                assert!(self.state.acknowledge(id, || now));
                self.signal_room();
            }
            self.after_step();
            if self.state.pending() == 0 && self.backlog.is_empty() {
                break;
            }
        }
        assert!(self.backlog.is_empty(), "a held publisher was never let go");
        assert_eq!(self.state.pending(), 0, "messages stuck in a session whose device reads everything");
    }
}

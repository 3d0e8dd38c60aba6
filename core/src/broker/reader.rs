//! A connection's reader: decodes what the device sends and acts on it —
//! routes its publishes, keeps its subscriptions, takes its acknowledgements.
//!
//! Flow control (docs/mqtt.md, "Flow control"): when a routed publish fills
//! a target's queue, the reader holds the device back until every such target
//! has room again: the publish's PUBACK (PUBREC) waits and no later packet is
//! acted on. Meanwhile it keeps reading, so that the device's acknowledgements
//! of messages sent to it (PUBACK) and its pings are still served — a device
//! that both publishes and subscribes cannot deadlock against its own queue —
//! and sets every other packet aside, in order, up to [`HELD_PACKETS`] /
//! [`HELD_BYTES`]; past that it stops reading until released.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{Packet, PubAck, PubComp, PubRec, SubAck, SubscribeReasonCode, UnsubAck};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use super::hub::Session;
use super::packet::{oversized, packet_name};
use super::validate::check_first;
use super::BrokerCtx;
use crate::group::Endpoint;
use crate::router::{Message, Qos, TargetId};
use crate::topic::{validate_topic, TopicFilter};

/// Packets set aside while the device is held back, before reading stops.
pub const HELD_PACKETS: usize = 1024;
/// Bytes of payload set aside while the device is held back, before reading stops.
pub const HELD_BYTES: usize = 1024 * 1024;
/// QoS 2 packet ids a device may have awaiting PUBREL at once; one more
/// closes the connection as a protocol error (a client has at most its own
/// in-flight window outstanding; 1024 is well above any client's default).
pub const MAX_QOS2_AWAITING_RELEASE: usize = 1024;

/// Why a connection ended.
#[derive(Debug)]
pub enum Close {
    /// The device sent DISCONNECT.
    Graceful,
    /// The socket closed without DISCONNECT.
    Eof,
    Io(std::io::Error),
    /// Closed by the core (shutdown, takeover, redeploy, stall).
    Kicked,
    KeepAlive,
    Protocol(String),
    Oversized {
        topic: String,
        size: usize,
    },
}

/// A publish taken by targets that are full: the publisher waits for them.
struct Waiting {
    targets: Vec<crate::router::Wait>,
    /// The PUBACK or PUBREC sent once they have room.
    ack: Option<Packet>,
}

pub struct Reader<'a> {
    ctx: &'a BrokerCtx,
    session: &'a Arc<Session>,
    source: Endpoint,
    thing: String,
    scratch: Vec<TargetId>,
    /// Acknowledgements produced by one read, handed to the writer together.
    acks: BytesMut,
    waiting: Option<Waiting>,
    /// Packets read while held back, acted on in order once released.
    held: VecDeque<Packet>,
    held_bytes: usize,
    /// An error met while held back, returned once the packets before it are
    /// acted on.
    deferred: Option<Close>,
}

impl<'a> Reader<'a> {
    pub fn new(ctx: &'a BrokerCtx, session: &'a Arc<Session>, source: Endpoint, thing: String) -> Self {
        Self {
            ctx,
            session,
            source,
            thing,
            scratch: Vec::new(),
            acks: BytesMut::new(),
            waiting: None,
            held: VecDeque::new(),
            held_bytes: 0,
            deferred: None,
        }
    }

    /// Serves the device until the connection must end; returns why.
    pub async fn run<R: AsyncRead + Unpin>(
        &mut self,
        rd: &mut R,
        buf: &mut BytesMut,
        max_packet: usize,
        keep_alive: Option<Duration>,
        cancel: &CancellationToken,
    ) -> Close {
        let close = self.serve(rd, buf, max_packet, keep_alive, cancel).await;
        self.flush_acks();
        close
    }

    async fn serve<R: AsyncRead + Unpin>(
        &mut self,
        rd: &mut R,
        buf: &mut BytesMut,
        max_packet: usize,
        keep_alive: Option<Duration>,
        cancel: &CancellationToken,
    ) -> Close {
        loop {
            if let Some(waiting) = self.waiting.take() {
                if let Err(close) = self.hold(waiting, rd, buf, max_packet, cancel).await {
                    return close;
                }
            }
            // What was set aside while held back comes first, in order.
            while self.waiting.is_none() {
                let Some(p) = self.held.pop_front() else { break };
                self.held_bytes -= held_size(&p);
                if let Some(close) = self.handle(p) {
                    return close;
                }
            }
            if self.waiting.is_some() {
                continue;
            }
            if let Some(close) = self.deferred.take() {
                return close;
            }
            // Then every complete packet already buffered, before reading again.
            while self.waiting.is_none() {
                match read_checked(buf, max_packet) {
                    Ok(p) => {
                        if let Some(close) = self.handle(p) {
                            return close;
                        }
                    }
                    Err(None) => break,
                    Err(Some(close)) => return close,
                }
            }
            if self.waiting.is_some() {
                continue;
            }
            self.flush_acks();
            reserve(buf);
            let read = async {
                match keep_alive {
                    Some(k) => tokio::time::timeout(k, rd.read_buf(buf)).await.ok(),
                    None => Some(rd.read_buf(buf).await),
                }
            };
            let n = tokio::select! {
                r = read => r,
                _ = cancel.cancelled() => return Close::Kicked,
                _ = self.ctx.stopping.cancelled() => return self.stopping(rd, buf, max_packet, cancel).await,
            };
            match n {
                None => return Close::KeepAlive,
                Some(Ok(0)) => return Close::Eof,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Close::Io(e),
            }
        }
    }

    /// While the core stops: the device stays connected (what functions
    /// publish meanwhile still reaches it), its PUBACKs and PINGREQs are
    /// served, but nothing else it sends is acted on — a PUBLISH is neither
    /// routed nor acknowledged, so the device keeps it and sends it again to
    /// the next core. Ends when the connection closes.
    async fn stopping<R: AsyncRead + Unpin>(
        &mut self,
        rd: &mut R,
        buf: &mut BytesMut,
        max_packet: usize,
        cancel: &CancellationToken,
    ) -> Close {
        let mut ignored = 0u64;
        let close = loop {
            loop {
                match read_checked(buf, max_packet) {
                    Ok(Packet::PubAck(a)) => self.on_puback(a.pkid),
                    Ok(Packet::PingReq) => self.ack(Packet::PingResp),
                    Ok(Packet::Disconnect) => {
                        self.flush_acks();
                        return Close::Graceful;
                    }
                    Ok(Packet::Publish(_)) => ignored += 1,
                    Ok(_) => {}
                    Err(None) => break,
                    Err(Some(close)) => {
                        self.flush_acks();
                        return close;
                    }
                }
            }
            self.flush_acks();
            reserve(buf);
            tokio::select! {
                r = rd.read_buf(buf) => match r {
                    Ok(0) => break Close::Eof,
                    Ok(_) => {}
                    Err(e) => break Close::Io(e),
                },
                _ = cancel.cancelled() => break Close::Kicked,
            }
        };
        if ignored > 0 {
            tracing::info!(thing = %self.thing, ignored, "publishes received while the core was stopping were not acknowledged (the device sends them again)");
        }
        close
    }

    /// Holds the device back until `waiting`'s targets have room, serving its
    /// acknowledgements and pings meanwhile; then sends the publish's ack.
    async fn hold<R: AsyncRead + Unpin>(
        &mut self,
        waiting: Waiting,
        rd: &mut R,
        buf: &mut BytesMut,
        max_packet: usize,
        cancel: &CancellationToken,
    ) -> Result<(), Close> {
        self.flush_acks();
        let ctx = self.ctx;
        let source = self.source.clone();
        let released = ctx.router.hold(&source, &waiting.targets);
        tokio::pin!(released);
        let mut eof = false;
        loop {
            while self.deferred.is_none() && self.held.len() < HELD_PACKETS && self.held_bytes < HELD_BYTES {
                match read_checked(buf, max_packet) {
                    Ok(Packet::PubAck(a)) => self.on_puback(a.pkid),
                    Ok(Packet::PingReq) => self.ack(Packet::PingResp),
                    Ok(p) => {
                        self.held_bytes += held_size(&p);
                        self.held.push_back(p);
                    }
                    Err(None) => break,
                    Err(close) => self.deferred = close,
                }
            }
            self.flush_acks();
            let can_read = !eof && self.deferred.is_none() && self.held.len() < HELD_PACKETS && self.held_bytes < HELD_BYTES;
            reserve(buf);
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(Close::Kicked),
                _ = &mut released => break,
                r = rd.read_buf(buf), if can_read => match r {
                    // The device is gone, but what it sent before is acted on.
                    Ok(0) => eof = true,
                    Ok(_) => {}
                    Err(e) => return Err(Close::Io(e)),
                },
            }
        }
        if let Some(ack) = waiting.ack {
            self.ack(ack);
        }
        Ok(())
    }

    fn flush_acks(&mut self) {
        if !self.acks.is_empty() {
            self.session.state().push_control(&self.acks);
            self.acks.clear();
            self.session.wake.notify_one();
        }
    }

    fn ack(&mut self, p: Packet) {
        // Encoding a fixed-size ack cannot fail.
        let _ = p.write(&mut self.acks, usize::MAX);
    }

    fn on_puback(&mut self, pkid: u16) {
        let (freed, room) = {
            let mut st = self.session.state();
            let freed = st.acknowledge(pkid, Instant::now);
            (freed, st.take_room_signal())
        };
        if freed {
            self.session.wake.notify_one();
        }
        if room {
            self.session.room.notify_waiters();
        }
    }

    /// Acts on one packet; returns why to close, if the connection must end.
    fn handle(&mut self, packet: Packet) -> Option<Close> {
        match packet {
            Packet::Publish(p) => return self.on_publish(p),
            Packet::PubRel(r) => {
                self.session.state().qos2_awaiting_release.retain(|id| *id != r.pkid);
                self.ack(Packet::PubComp(PubComp::new(r.pkid)));
            }
            Packet::PubAck(a) => self.on_puback(a.pkid),
            Packet::Subscribe(s) => self.on_subscribe(s),
            Packet::Unsubscribe(u) => {
                let mut st = self.session.state();
                for f in &u.topics {
                    st.unsubscribe(f);
                }
                drop(st);
                self.ack(Packet::UnsubAck(UnsubAck::new(u.pkid)));
            }
            Packet::PingReq => self.ack(Packet::PingResp),
            Packet::Disconnect => return Some(Close::Graceful),
            other => return Some(Close::Protocol(format!("unexpected {} from a device", packet_name(&other)))),
        }
        None
    }

    fn on_publish(&mut self, p: rumqttc::mqttbytes::v4::Publish) -> Option<Close> {
        if let Err(e) = validate_topic(&p.topic) {
            return Some(Close::Protocol(format!("PUBLISH topic '{}' {e}", p.topic)));
        }
        if p.payload.len() > self.ctx.max_payload {
            return Some(Close::Oversized { topic: p.topic, size: p.payload.len() });
        }
        let qos = match p.qos {
            QoS::AtMostOnce => Qos::AtMostOnce,
            _ => Qos::AtLeastOnce,
        };
        // A QoS 2 id awaiting PUBREL is session state: a copy re-sent, also
        // after a cleanSession=0 reconnection, is not routed again.
        let duplicate_qos2 = p.qos == QoS::ExactlyOnce && {
            let st = self.session.state();
            let duplicate = st.qos2_awaiting_release.contains(&p.pkid);
            if !duplicate && st.qos2_awaiting_release.len() >= MAX_QOS2_AWAITING_RELEASE {
                return Some(Close::Protocol(format!("more than {MAX_QOS2_AWAITING_RELEASE} QoS 2 messages awaiting PUBREL")));
            }
            duplicate
        };
        let mut full = Vec::new();
        if !duplicate_qos2 {
            let msg = Message { topic: Arc::from(p.topic.as_str()), payload: p.payload, qos };
            let outcome = self.ctx.router.route(&self.source, &msg, &mut self.scratch);
            if outcome.blocked > 0 {
                full = self.ctx.router.full_targets(&outcome, &self.scratch);
            }
        }
        let ack = match p.qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce => Some(Packet::PubAck(PubAck::new(p.pkid))),
            QoS::ExactlyOnce => {
                if !duplicate_qos2 {
                    self.session.state().qos2_awaiting_release.push(p.pkid);
                }
                Some(Packet::PubRec(PubRec::new(p.pkid)))
            }
        };
        if full.is_empty() {
            if let Some(ack) = ack {
                self.ack(ack);
            }
        } else {
            // Acknowledged, and the next packet acted on, only once every
            // full target has room again.
            self.waiting = Some(Waiting { targets: full, ack });
        }
        None
    }

    fn on_subscribe(&mut self, s: rumqttc::mqttbytes::v4::Subscribe) {
        let table = self.ctx.router.table();
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut st = self.session.state();
        for f in &s.filters {
            let code = match TopicFilter::new(&f.path) {
                Ok(filter) if table.grants(&self.thing, &filter) => {
                    let (qos, granted) =
                        if f.qos == QoS::AtMostOnce { (Qos::AtMostOnce, QoS::AtMostOnce) } else { (Qos::AtLeastOnce, QoS::AtLeastOnce) };
                    match st.subscribe(filter, qos) {
                        Ok(()) => SubscribeReasonCode::Success(granted),
                        Err(_) => {
                            tracing::info!(thing = %self.thing, filter = %f.path, max = st.limits().max_subscriptions,
                                "SUBSCRIBE refused: the session holds the most subscriptions allowed");
                            SubscribeReasonCode::Failure
                        }
                    }
                }
                Ok(_) => {
                    tracing::info!(thing = %self.thing, filter = %f.path, "SUBSCRIBE refused: no subscription of the group routes matching topics to this device");
                    SubscribeReasonCode::Failure
                }
                Err(e) => {
                    tracing::info!(thing = %self.thing, filter = %f.path, error = %e, "SUBSCRIBE refused: invalid topic filter");
                    SubscribeReasonCode::Failure
                }
            };
            codes.push(code);
        }
        drop(st);
        self.ack(Packet::SubAck(SubAck::new(s.pkid, codes)));
    }
}

/// What counts against [`HELD_BYTES`] for a packet set aside.
fn held_size(p: &Packet) -> usize {
    match p {
        Packet::Publish(p) => p.topic.len() + p.payload.len(),
        _ => 0,
    }
}

fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(16 * 1024);
    }
}

/// The next whole packet in `buf`, checked (validate.rs) and decoded;
/// `Err(None)` while it is incomplete, `Err(Some(why))` when it is refused.
fn read_checked(buf: &mut BytesMut, max_packet: usize) -> Result<Packet, Option<Close>> {
    if let Err(invalid) = check_first(buf) {
        return Err(Some(Close::Protocol(format!("malformed packet: {invalid}"))));
    }
    match Packet::read(buf, max_packet) {
        Ok(p) => Ok(p),
        Err(CodecError::InsufficientBytes(_)) => Err(None),
        Err(e) => Err(Some(decode_error(buf, e))),
    }
}

fn decode_error(buf: &BytesMut, e: CodecError) -> Close {
    match e {
        CodecError::PayloadSizeLimitExceeded(len) => {
            let (topic, size) = oversized(buf, len);
            Close::Oversized { topic, size }
        }
        e => Close::Protocol(format!("malformed packet: {e}")),
    }
}

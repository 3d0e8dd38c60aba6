//! One device connection: TLS handshake, CONNECT and admission, then a reader
//! (this task) that routes what the device publishes, and a writer task that
//! drains the device's session to the socket in batches.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{ConnAck, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, SubAck, SubscribeReasonCode, UnsubAck};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::hub::Session;
use super::BrokerCtx;
use crate::group::Endpoint;
use crate::router::{Message, Qos, RouteOutcome, TargetId};
use crate::topic::{validate_topic, TopicFilter};

/// TLS handshake plus CONNECT must finish within this (SPEC §6).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most messages the writer encodes before writing to the socket.
const WRITE_BATCH: usize = 512;
/// Bytes of MQTT framing allowed on top of `maxPayloadBytes` (topic, ids, header).
const FRAMING_ALLOWANCE: usize = 65_535 + 16;

/// Why a connection ended.
#[derive(Debug)]
enum Close {
    /// The device sent DISCONNECT.
    Graceful,
    /// The socket closed without DISCONNECT.
    Eof,
    Io(std::io::Error),
    /// Closed by the core (shutdown, takeover, redeploy, overflow).
    Kicked,
    KeepAlive,
    Protocol(String),
    Oversized {
        topic: String,
        size: usize,
    },
}

/// Serves one accepted TCP connection until it closes.
pub async fn serve(ctx: Arc<BrokerCtx>, tcp: TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let tls = tokio::select! {
        r = tokio::time::timeout_at(deadline, ctx.acceptor.accept(tcp)) => r,
        _ = ctx.shutdown.cancelled() => return,
    };
    let tls = match tls {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            ctx.hub.stats.tls_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(%peer, error = %e, "TLS handshake failed; connection refused");
            return;
        }
        Err(_) => {
            ctx.hub.stats.tls_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(%peer, "TLS handshake did not finish within 10 s; connection closed");
            return;
        }
    };
    let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
        tracing::info!(%peer, "no client certificate; connection refused");
        return;
    };
    let fingerprint = crate::certs::fingerprint(cert);
    let common_name = crate::certs::common_name(cert);
    let (mut rd, mut wr) = tokio::io::split(tls);
    let mut buf = BytesMut::with_capacity(4096);
    let max_packet = ctx.max_payload + FRAMING_ALLOWANCE;

    let first = tokio::select! {
        r = tokio::time::timeout_at(deadline, read_packet(&mut rd, &mut buf, max_packet)) => r,
        _ = ctx.shutdown.cancelled() => return,
    };
    let connect = match first {
        Ok(Ok(Packet::Connect(c))) => c,
        Ok(Ok(other)) => {
            tracing::info!(%peer, packet = ?packet_name(&other), "first packet is not CONNECT; connection closed");
            return;
        }
        Ok(Err(ReadError::Codec(CodecError::InvalidProtocol | CodecError::InvalidProtocolLevel(_)))) => {
            tracing::info!(%peer, "unsupported MQTT protocol version (ggcore speaks MQTT 3.1.1); connection refused");
            let _ = write_packet(&mut wr, Packet::ConnAck(ConnAck::new(ConnectReturnCode::RefusedProtocolVersion, false))).await;
            return;
        }
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "malformed or missing CONNECT; connection closed");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "no CONNECT within 10 s; connection closed");
            return;
        }
    };
    if !matches!(connect.protocol, rumqttc::mqttbytes::Protocol::V4) {
        tracing::info!(%peer, "unsupported MQTT protocol version (ggcore speaks MQTT 3.1.1); connection refused");
        let _ = write_packet(&mut wr, Packet::ConnAck(ConnAck::new(ConnectReturnCode::RefusedProtocolVersion, false))).await;
        return;
    }

    // Admission (SPEC §6): the certificate names a device of the group, and the
    // client id is that device's thing name.
    let table = ctx.router.table();
    let client_id = connect.client_id.clone();
    let refusal = match table.admit(&fingerprint, common_name.as_deref()) {
        None => Some((
            ConnectReturnCode::NotAuthorized,
            format!("certificate {fingerprint} (CN {}) is not a device of the group", common_name.as_deref().unwrap_or("-")),
        )),
        Some(d) if d.thing.name() != client_id => Some((
            ConnectReturnCode::BadClientId,
            format!("client id '{client_id}' is not the thing name '{}' of this certificate", d.thing.name()),
        )),
        Some(_) if ctx.core_thing.as_deref() == Some(client_id.as_str()) => {
            Some((ConnectReturnCode::NotAuthorized, "the core's own thing cannot connect to the local server".to_string()))
        }
        Some(_) => None,
    };
    if let Some((code, reason)) = refusal {
        ctx.hub.stats.connections_refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(%peer, client_id = %client_id, reason = %reason, "connection refused");
        let _ = write_packet(&mut wr, Packet::ConnAck(ConnAck::new(code, false))).await;
        let _ = wr.shutdown().await;
        return;
    }
    let Some(device) = table.admit(&fingerprint, common_name.as_deref()).cloned() else {
        return;
    };
    drop(table);
    let mut will = match connect.last_will {
        Some(w) => match check_will(&w.topic, &w.message, ctx.max_payload) {
            Ok(()) => Some(Message {
                topic: Arc::from(w.topic.as_str()),
                payload: w.message.clone(),
                qos: if w.qos == QoS::AtMostOnce { Qos::AtMostOnce } else { Qos::AtLeastOnce },
            }),
            Err(reason) => {
                tracing::info!(%peer, thing = %client_id, reason = %reason, "invalid will message; connection refused");
                return;
            }
        },
        None => None,
    };

    let conn_id = ctx.hub.next_conn_id();
    let cancel = ctx.shutdown.child_token();
    let (session, present) = ctx.hub.attach(&device, connect.clean_session, conn_id, cancel.clone(), peer);
    if write_packet(&mut wr, Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, present))).await.is_err() {
        ctx.hub.detach(&session, conn_id);
        return;
    }
    ctx.hub.stats.connections_accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(%peer, thing = %client_id, clean_session = connect.clean_session, session_present = present, "device connected");

    // The writer's first pass sends what a resumed session kept (in-flight
    // messages again, queued ones) without waiting for new traffic.
    session.wake.notify_one();
    // Not in the tracker: this (tracked) task cancels and awaits it below.
    let writer = tokio::spawn(write_loop(session.clone(), wr, cancel.clone()));
    let source = Endpoint::Device(device.thing.clone());
    let keep_alive = match connect.keep_alive {
        0 => None,
        s => Some(Duration::from_millis(s as u64 * 1500)),
    };
    let mut reader = Reader {
        ctx: &ctx,
        session: &session,
        source,
        thing: client_id.clone(),
        scratch: Vec::new(),
        acks: BytesMut::new(),
        qos2_pending: Vec::new(),
        blocked: None,
    };
    let close = reader.run(&mut rd, &mut buf, max_packet, keep_alive, &cancel).await;
    cancel.cancel();
    let _ = writer.await;
    ctx.hub.detach(&session, conn_id);

    let shutting_down = ctx.shutdown.is_cancelled();
    match &close {
        Close::Graceful => {
            will = None;
            tracing::info!(thing = %client_id, "device disconnected");
        }
        Close::Eof => {
            tracing::info!(thing = %client_id, "device connection closed without DISCONNECT")
        }
        Close::Io(e) => tracing::info!(thing = %client_id, error = %e, "device connection lost"),
        Close::Kicked => tracing::info!(thing = %client_id, "device connection closed by the core"),
        Close::KeepAlive => {
            tracing::info!(thing = %client_id, "device silent past its keep-alive; connection closed")
        }
        Close::Protocol(why) => {
            ctx.hub.stats.protocol_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(thing = %client_id, reason = %why, "MQTT protocol error; connection closed")
        }
        Close::Oversized { topic, size } => {
            ctx.hub.stats.oversized_payloads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(thing = %client_id, topic = %topic, size, max = ctx.max_payload, "payload over maxPayloadBytes; connection closed")
        }
    }
    // Wills are routed like a publish from the device, except when the core itself
    // is shutting down (SPEC §7).
    if let Some(w) = will {
        if !shutting_down {
            let mut scratch = Vec::new();
            let source = Endpoint::Device(device.thing.clone());
            let outcome = ctx.router.route(&source, &w, &mut scratch);
            if outcome.blocked > 0 {
                ctx.router.retry(&source, &w, &mut scratch, outcome).await;
            }
        }
    }
}

fn check_will(topic: &str, message: &Bytes, max_payload: usize) -> Result<(), String> {
    validate_topic(topic).map_err(|e| format!("will topic '{topic}' {e}"))?;
    if message.len() > max_payload {
        return Err(format!("will payload of {} bytes is over maxPayloadBytes {max_payload}", message.len()));
    }
    Ok(())
}

struct Reader<'a> {
    ctx: &'a BrokerCtx,
    session: &'a Arc<Session>,
    source: Endpoint,
    thing: String,
    scratch: Vec<TargetId>,
    /// Acknowledgements produced by one read, handed to the writer together.
    acks: BytesMut,
    /// QoS 2 packet ids received and not yet released (PUBREL), so that a
    /// re-sent PUBLISH is not routed twice.
    qos2_pending: Vec<u16>,
    /// A message some of whose targets are full, with the ack (QoS 1) that
    /// waits for them: the reader holds the device back until they take it.
    blocked: Option<(Message, RouteOutcome, Option<Packet>)>,
}

impl Reader<'_> {
    async fn run<R: AsyncRead + Unpin>(
        &mut self,
        rd: &mut R,
        buf: &mut BytesMut,
        max_packet: usize,
        keep_alive: Option<Duration>,
        cancel: &CancellationToken,
    ) -> Close {
        loop {
            // Handle every complete packet already buffered before reading again.
            loop {
                match Packet::read(buf, max_packet) {
                    Ok(p) => {
                        if let Some(close) = self.handle(p) {
                            self.flush_acks();
                            return close;
                        }
                        if let Some((msg, outcome, ack)) = self.blocked.take() {
                            self.flush_acks();
                            self.ctx.router.retry(&self.source, &msg, &mut self.scratch, outcome).await;
                            if let Some(ack) = ack {
                                self.ack(ack);
                            }
                        }
                    }
                    Err(CodecError::InsufficientBytes(_)) => break,
                    Err(CodecError::PayloadSizeLimitExceeded(len)) => {
                        self.flush_acks();
                        return oversized(buf, len);
                    }
                    Err(e) => {
                        self.flush_acks();
                        return Close::Protocol(format!("malformed packet: {e}"));
                    }
                }
            }
            self.flush_acks();
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(16 * 1024);
            }
            let read = async {
                match keep_alive {
                    Some(k) => tokio::time::timeout(k, rd.read_buf(buf)).await.ok(),
                    None => Some(rd.read_buf(buf).await),
                }
            };
            let n = tokio::select! {
                r = read => r,
                _ = cancel.cancelled() => return Close::Kicked,
            };
            match n {
                None => return Close::KeepAlive,
                Some(Ok(0)) => return Close::Eof,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Close::Io(e),
            }
        }
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

    /// Handles one packet; returns why to close, if the connection must end.
    fn handle(&mut self, packet: Packet) -> Option<Close> {
        match packet {
            Packet::Publish(p) => {
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
                let duplicate_qos2 = p.qos == QoS::ExactlyOnce && self.qos2_pending.contains(&p.pkid);
                let mut routed = None;
                if !duplicate_qos2 {
                    let msg = Message { topic: Arc::from(p.topic.as_str()), payload: p.payload, qos };
                    let outcome = self.ctx.router.route(&self.source, &msg, &mut self.scratch);
                    if outcome.blocked > 0 {
                        routed = Some((msg, outcome));
                    }
                }
                let ack = match p.qos {
                    QoS::AtMostOnce => None,
                    QoS::AtLeastOnce => Some(Packet::PubAck(PubAck::new(p.pkid))),
                    QoS::ExactlyOnce => {
                        if !duplicate_qos2 {
                            if self.qos2_pending.len() >= 1024 {
                                return Some(Close::Protocol("more than 1024 QoS 2 messages awaiting PUBREL".to_string()));
                            }
                            self.qos2_pending.push(p.pkid);
                        }
                        Some(Packet::PubRec(PubRec::new(p.pkid)))
                    }
                };
                match (routed, ack) {
                    // Acknowledged (and the next packet read) only once every
                    // target took it (see `blocked`).
                    (Some((msg, outcome)), ack) => self.blocked = Some((msg, outcome, ack)),
                    (None, Some(ack)) => self.ack(ack),
                    (None, None) => {}
                }
            }
            Packet::PubRel(r) => {
                self.qos2_pending.retain(|id| *id != r.pkid);
                self.ack(Packet::PubComp(PubComp::new(r.pkid)));
            }
            Packet::PubAck(a) => {
                let freed = self.session.state().acknowledge(a.pkid);
                if freed {
                    self.session.wake.notify_one();
                }
            }
            Packet::Subscribe(s) => {
                let table = self.ctx.router.table();
                let mut codes = Vec::with_capacity(s.filters.len());
                let mut granted = Vec::new();
                for f in &s.filters {
                    match TopicFilter::new(&f.path) {
                        Ok(filter) if table.grants(&self.thing, &filter) => {
                            let qos = if f.qos == QoS::AtMostOnce { Qos::AtMostOnce } else { Qos::AtLeastOnce };
                            codes.push(SubscribeReasonCode::Success(if qos == Qos::AtMostOnce {
                                QoS::AtMostOnce
                            } else {
                                QoS::AtLeastOnce
                            }));
                            granted.push((filter, qos));
                        }
                        Ok(_) => {
                            tracing::info!(thing = %self.thing, filter = %f.path, "SUBSCRIBE refused: no subscription of the group routes matching topics to this device");
                            codes.push(SubscribeReasonCode::Failure);
                        }
                        Err(e) => {
                            tracing::info!(thing = %self.thing, filter = %f.path, error = %e, "SUBSCRIBE refused: invalid topic filter");
                            codes.push(SubscribeReasonCode::Failure);
                        }
                    }
                }
                let mut st = self.session.state();
                for (f, q) in granted {
                    st.subscribe(f, q);
                }
                drop(st);
                self.ack(Packet::SubAck(SubAck::new(s.pkid, codes)));
            }
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
}

/// Builds the close reason for a packet over the size limit, naming its topic
/// when the buffered bytes already hold it.
fn oversized(buf: &BytesMut, remaining_len: usize) -> Close {
    let topic = peek_publish_topic(buf).unwrap_or_else(|| "<not a PUBLISH or not yet received>".to_string());
    // A packet id follows the topic only at QoS 1 and 2.
    let packet_id = if buf.first().is_some_and(|b| b & 0b0110 != 0) { 2 } else { 0 };
    let size = remaining_len.saturating_sub(2 + topic.len() + packet_id);
    Close::Oversized { topic, size }
}

/// The topic of a PUBLISH whose first bytes are buffered (the codec cannot parse
/// a packet it refuses for size, so only the topic is read from the prefix).
fn peek_publish_topic(buf: &[u8]) -> Option<String> {
    if buf.first()? >> 4 != 3 {
        return None;
    }
    let mut i = 1;
    while buf.get(i)? & 0x80 != 0 {
        i += 1;
        if i > 4 {
            return None;
        }
    }
    let start = i + 1;
    let len = u16::from_be_bytes([*buf.get(start)?, *buf.get(start + 1)?]) as usize;
    let bytes = buf.get(start + 2..start + 2 + len)?;
    String::from_utf8(bytes.to_vec()).ok()
}

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{0}")]
    Codec(CodecError),
    #[error("connection closed")]
    Eof,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

async fn read_packet<R: AsyncRead + Unpin>(rd: &mut R, buf: &mut BytesMut, max: usize) -> Result<Packet, ReadError> {
    loop {
        match Packet::read(buf, max) {
            Ok(p) => return Ok(p),
            Err(CodecError::InsufficientBytes(n)) => {
                buf.reserve(n.max(1024));
                if rd.read_buf(buf).await? == 0 {
                    return Err(ReadError::Eof);
                }
            }
            Err(e) => return Err(ReadError::Codec(e)),
        }
    }
}

async fn write_packet<W: AsyncWrite + Unpin>(wr: &mut W, p: Packet) -> std::io::Result<()> {
    let mut b = BytesMut::new();
    p.write(&mut b, usize::MAX).map_err(std::io::Error::other)?;
    wr.write_all(&b).await?;
    wr.flush().await
}

fn packet_name(p: &Packet) -> &'static str {
    match p {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect => "DISCONNECT",
    }
}

/// Drains the session to the socket until cancelled. On QoS 1 overflow it closes
/// the connection (the session is kept).
async fn write_loop<W: AsyncWrite + Unpin>(session: Arc<Session>, mut wr: W, cancel: CancellationToken) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut retry_at: Option<Instant> = None;
    loop {
        let sleep_for = retry_at.map(|t| t.saturating_duration_since(Instant::now())).unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = session.wake.notified() => {}
            _ = tokio::time::sleep(sleep_for) => {}
        }
        loop {
            let more = {
                let mut st = session.state();
                if st.overflowed {
                    drop(st);
                    tracing::warn!(thing = %session.thing, "device's QoS 1 queue overflowed (a slow reader); connection closed, session kept");
                    cancel.cancel();
                    return;
                }
                st.drain_into(&mut buf, Instant::now(), WRITE_BATCH);
                retry_at = st.next_retry();
                st.has_work()
            };
            if !buf.is_empty() {
                let write = async {
                    wr.write_all(&buf).await?;
                    wr.flush().await
                };
                let result = tokio::select! {
                    r = write => r,
                    _ = cancel.cancelled() => return,
                };
                if result.is_err() {
                    cancel.cancel();
                    return;
                }
                if buf.capacity() > 1024 * 1024 {
                    buf = BytesMut::with_capacity(64 * 1024);
                } else {
                    buf.clear();
                }
            }
            if !more {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_size_counts_the_packet_id_only_at_qos_1_and_2() {
        for (qos, header) in [(Qos::AtMostOnce, 2 + 9), (Qos::AtLeastOnce, 2 + 9 + 2)] {
            let mut b = BytesMut::new();
            crate::broker::session::encode_publish(&mut b, "big/topic", &vec![0u8; 300_000], qos, 1, false);
            let Close::Oversized { size, .. } = oversized(&b, 300_000 + header) else { panic!("not oversized") };
            assert_eq!(size, 300_000);
        }
    }

    #[test]
    fn topic_of_a_partial_publish() {
        let mut b = BytesMut::new();
        crate::broker::session::encode_publish(&mut b, "big/topic", &vec![0u8; 300_000], Qos::AtMostOnce, 0, false);
        b.truncate(40);
        assert_eq!(peek_publish_topic(&b).as_deref(), Some("big/topic"));
        assert_eq!(peek_publish_topic(&[0x82, 0x05]), None);
    }
}

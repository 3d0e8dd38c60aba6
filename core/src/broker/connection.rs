//! One device connection: TLS handshake, CONNECT and admission, then the
//! session: a reader (this task, `reader.rs`) that acts on what the device
//! sends and a writer task (`writer.rs`) that drains the device's session to
//! the socket. When the connection ends, the device's will is routed.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{ConnAck, Connect, ConnectReturnCode, LastWill, Packet};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::packet::{packet_name, read_packet, write_packet, ReadError, FRAMING_ALLOWANCE};
use super::reader::{Close, Reader};
use super::validate::Invalid;
use super::writer::{write_loop, WriterEnd};
use super::BrokerCtx;
use crate::group::{Device, Endpoint};
use crate::router::{Message, Qos};
use crate::topic::validate_topic;

/// TLS handshake plus CONNECT must finish within this (docs/mqtt.md).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Tls = TlsStream<TcpStream>;

/// A device that passed the TLS handshake and sent CONNECT.
struct Connecting {
    rd: ReadHalf<Tls>,
    wr: WriteHalf<Tls>,
    /// Bytes read after CONNECT.
    buf: BytesMut,
    connect: Connect,
    fingerprint: String,
    common_name: Option<String>,
}

/// Serves one accepted TCP connection until it closes.
pub async fn serve(ctx: Arc<BrokerCtx>, tcp: TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let Some(mut conn) = handshake(&ctx, tcp, peer).await else { return };
    let Some(device) = admit(&ctx, &mut conn, peer).await else { return };
    run_session(&ctx, conn, device, peer).await;
}

/// TLS with a client certificate, then CONNECT, within [`HANDSHAKE_TIMEOUT`].
/// `None` when the connection ended (logged).
async fn handshake(ctx: &BrokerCtx, tcp: TcpStream, peer: SocketAddr) -> Option<Connecting> {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let tls = tokio::select! {
        r = tokio::time::timeout_at(deadline, ctx.acceptor.accept(tcp)) => r,
        _ = ctx.shutdown.cancelled() => return None,
    };
    let tls = match tls {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            ctx.hub.stats.tls_failures.fetch_add(1, Relaxed);
            tracing::info!(%peer, error = %e, "TLS handshake failed; connection refused");
            return None;
        }
        Err(_) => {
            ctx.hub.stats.tls_failures.fetch_add(1, Relaxed);
            tracing::info!(%peer, "TLS handshake did not finish within 10 s; connection closed");
            return None;
        }
    };
    let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
        tracing::info!(%peer, "no client certificate; connection refused");
        return None;
    };
    let fingerprint = crate::certs::fingerprint(cert);
    let common_name = crate::certs::common_name(cert);
    let (mut rd, mut wr) = tokio::io::split(tls);
    let mut buf = BytesMut::with_capacity(4096);
    let max_packet = ctx.max_payload + FRAMING_ALLOWANCE;
    let first = tokio::select! {
        r = tokio::time::timeout_at(deadline, read_packet(&mut rd, &mut buf, max_packet)) => r,
        _ = ctx.shutdown.cancelled() => return None,
    };
    let connect = match first {
        Ok(Ok(Packet::Connect(c))) if matches!(c.protocol, rumqttc::mqttbytes::Protocol::V4) => c,
        Ok(Ok(Packet::Connect(_)))
        | Ok(Err(ReadError::Invalid(Invalid::UnsupportedProtocol(_))))
        | Ok(Err(ReadError::Codec(CodecError::InvalidProtocol | CodecError::InvalidProtocolLevel(_)))) => {
            tracing::info!(%peer, "unsupported MQTT protocol version (ggcore speaks MQTT 3.1.1); connection refused");
            let _ = write_packet(&mut wr, Packet::ConnAck(ConnAck::new(ConnectReturnCode::RefusedProtocolVersion, false))).await;
            return None;
        }
        Ok(Ok(other)) => {
            tracing::info!(%peer, packet = packet_name(&other), "first packet is not CONNECT; connection closed");
            return None;
        }
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "malformed or missing CONNECT; connection closed");
            return None;
        }
        Err(_) => {
            tracing::info!(%peer, "no CONNECT within 10 s; connection closed");
            return None;
        }
    };
    Some(Connecting { rd, wr, buf, connect, fingerprint, common_name })
}

/// Admission (docs/mqtt.md, "Who may connect"): the certificate names a device
/// of the group, and the client id is that device's thing name. A refusal
/// gets its CONNACK code and a log line.
async fn admit(ctx: &BrokerCtx, conn: &mut Connecting, peer: SocketAddr) -> Option<Device> {
    let table = ctx.router.table();
    let client_id = conn.connect.client_id.as_str();
    let device = table.admit(&conn.fingerprint, conn.common_name.as_deref());
    let refusal = match device {
        None => Some((
            ConnectReturnCode::NotAuthorized,
            format!("certificate {} (CN {}) is not a device of the group", conn.fingerprint, conn.common_name.as_deref().unwrap_or("-")),
        )),
        Some(d) if d.thing.name() != client_id => Some((
            ConnectReturnCode::BadClientId,
            format!("client id '{client_id}' is not the thing name '{}' of this certificate", d.thing.name()),
        )),
        Some(_) if ctx.core_thing.as_deref() == Some(client_id) => {
            Some((ConnectReturnCode::NotAuthorized, "the core's own thing cannot connect to the local server".to_string()))
        }
        Some(_) => None,
    };
    let Some((code, reason)) = refusal else { return device.cloned() };
    ctx.hub.stats.connections_refused.fetch_add(1, Relaxed);
    tracing::warn!(%peer, client_id = %client_id, reason = %reason, "connection refused");
    let _ = write_packet(&mut conn.wr, Packet::ConnAck(ConnAck::new(code, false))).await;
    let _ = conn.wr.shutdown().await;
    None
}

/// The will of a CONNECT, checked; `Err` gives the reason it is refused.
fn will_message(w: &LastWill, max_payload: usize) -> Result<Message, String> {
    validate_topic(&w.topic).map_err(|e| format!("will topic '{}' {e}", w.topic))?;
    if w.message.len() > max_payload {
        return Err(format!("will payload of {} bytes is over maxPayloadBytes {max_payload}", w.message.len()));
    }
    let qos = if w.qos == QoS::AtMostOnce { Qos::AtMostOnce } else { Qos::AtLeastOnce };
    Ok(Message { topic: Arc::from(w.topic.as_str()), payload: Bytes::clone(&w.message), qos })
}

/// The admitted device's session: CONNACK, reader and writer until the
/// connection ends, then the will.
async fn run_session(ctx: &BrokerCtx, conn: Connecting, device: Device, peer: SocketAddr) {
    let Connecting { mut rd, mut wr, mut buf, connect, .. } = conn;
    let client_id = connect.client_id.clone();
    let mut will = match connect.last_will.as_ref().map(|w| will_message(w, ctx.max_payload)).transpose() {
        Ok(w) => w,
        Err(reason) => {
            tracing::info!(%peer, thing = %client_id, reason = %reason, "invalid will message; connection refused");
            return;
        }
    };
    let conn_id = ctx.hub.next_conn_id();
    let cancel = ctx.shutdown.child_token();
    let (session, present) = ctx.hub.attach(&device, connect.clean_session, conn_id, cancel.clone(), peer);
    if write_packet(&mut wr, Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, present))).await.is_err() {
        ctx.hub.detach(&session, conn_id);
        return;
    }
    ctx.hub.stats.connections_accepted.fetch_add(1, Relaxed);
    tracing::info!(%peer, thing = %client_id, clean_session = connect.clean_session, session_present = present, "device connected");

    // The writer's first pass sends what a resumed session kept (in-flight
    // messages again, queued ones) without waiting for new traffic. It is
    // awaited below, so it lives no longer than this (tracked) task.
    let writer = tokio::spawn(write_loop(session.clone(), wr, cancel.clone()));
    let source = Endpoint::Device(device.thing.clone());
    let keep_alive = match connect.keep_alive {
        0 => None,
        s => Some(Duration::from_millis(s as u64 * 1500)),
    };
    let max_packet = ctx.max_payload + FRAMING_ALLOWANCE;
    let mut reader = Reader::new(ctx, &session, source.clone(), client_id.clone());
    let close = reader.run(&mut rd, &mut buf, max_packet, keep_alive, &cancel).await;
    cancel.cancel();
    let writer_end = writer.await.unwrap_or(WriterEnd::Cancelled);
    ctx.hub.detach(&session, conn_id);

    if let WriterEnd::Stalled { pending, stalled_for } = writer_end {
        ctx.hub.stats.stalled_devices.fetch_add(1, Relaxed);
        tracing::warn!(thing = %client_id, pending, stalled_s = stalled_for.as_secs(), session_kept = !connect.clean_session,
            "device made no progress while its queue was full; connection closed");
    } else {
        log_close(ctx, &client_id, &close);
    }
    if matches!(close, Close::Graceful) {
        will = None;
    }
    // Wills are routed like a publish from the device, except when the core
    // itself is shutting down (docs/mqtt.md, "Wills").
    if let Some(w) = will {
        if !ctx.shutdown.is_cancelled() {
            let mut scratch = Vec::new();
            ctx.router.route_held(&source, &w, &mut scratch).await;
        }
    }
}

fn log_close(ctx: &BrokerCtx, client_id: &str, close: &Close) {
    match close {
        Close::Graceful => tracing::info!(thing = %client_id, "device disconnected"),
        Close::Eof => tracing::info!(thing = %client_id, "device connection closed without DISCONNECT"),
        Close::Io(e) => tracing::info!(thing = %client_id, error = %e, "device connection lost"),
        Close::Kicked => tracing::info!(thing = %client_id, "device connection closed by the core"),
        Close::KeepAlive => tracing::info!(thing = %client_id, "device silent past its keep-alive; connection closed"),
        Close::Protocol(why) => {
            ctx.hub.stats.protocol_errors.fetch_add(1, Relaxed);
            tracing::warn!(thing = %client_id, reason = %why, "MQTT protocol error; connection closed")
        }
        Close::Oversized { topic, size } => {
            ctx.hub.stats.oversized_payloads.fetch_add(1, Relaxed);
            tracing::warn!(thing = %client_id, topic = %topic, size, max = ctx.max_payload, "payload over maxPayloadBytes; connection closed")
        }
    }
}

//! A raw TLS (or plain TCP) client for what well-behaved MQTT clients never
//! send: malformed packets, other protocol versions, stalled handshakes.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{Connect, Packet};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::mqtt::{tls_config, HOST};
use super::process::Creds;
use super::DEADLINE;

pub type Stream = TlsStream<TcpStream>;

/// A plain TCP connection to the MQTT port (no TLS).
pub async fn tcp(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).await.expect("TCP connect")
}

/// TLS with an explicit client config; the handshake's result.
pub async fn tls_with(port: u16, config: Arc<ClientConfig>) -> std::io::Result<Stream> {
    let tcp = tcp(port).await;
    let name = ServerName::try_from(HOST).unwrap();
    tokio::time::timeout(DEADLINE, TlsConnector::from(config).connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("TLS handshake timed out"))?
}

/// TLS as the device `creds` (handshake completed, nothing sent yet).
pub async fn tls(port: u16, creds: &Creds) -> Stream {
    tls_with(port, tls_config(&creds.ca, &creds.cert, &creds.key)).await.expect("TLS handshake")
}

/// An MQTT 3.1.1 CONNECT for `client_id` (clean session, keep-alive 60 s).
pub fn connect_packet(client_id: &str) -> Vec<u8> {
    connect_packet_with(client_id, 60)
}

/// An MQTT 3.1.1 CONNECT for `client_id` with a keep-alive of `keep_alive` s.
pub fn connect_packet_with(client_id: &str, keep_alive: u16) -> Vec<u8> {
    let mut c = Connect::new(client_id);
    c.keep_alive = keep_alive;
    let mut b = BytesMut::new();
    c.write(&mut b).unwrap();
    b.to_vec()
}

/// TLS plus CONNECT as `creds`, with the CONNACK checked: an MQTT session on
/// which the test writes whatever bytes it likes.
pub async fn session(port: u16, creds: &Creds) -> (Stream, BytesMut) {
    session_with(port, creds, 60).await
}

/// [`session`] with a chosen keep-alive (seconds).
pub async fn session_with(port: u16, creds: &Creds, keep_alive: u16) -> (Stream, BytesMut) {
    let mut s = tls(port, creds).await;
    s.write_all(&connect_packet_with(&creds.thing, keep_alive)).await.unwrap();
    let mut buf = BytesMut::new();
    match read_packet(&mut s, &mut buf).await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code, rumqttc::ConnectReturnCode::Success, "{} refused", creds.thing),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    (s, buf)
}

/// The next MQTT packet from the core, or `None` when the connection closes
/// (or nothing complete arrives within the deadline).
pub async fn read_packet<S: AsyncReadExt + Unpin>(s: &mut S, buf: &mut BytesMut) -> Option<Packet> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match Packet::read(buf, 1 << 20) {
            Ok(p) => return Some(p),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(e) => panic!("the core sent a packet that does not parse: {e}"),
        }
        buf.reserve(4096);
        match tokio::time::timeout_at(deadline, s.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return None,
        }
    }
}

/// Waits until the peer closes the connection (EOF or reset). Returns the
/// bytes received before the close, or `None` if it stayed open for `timeout`.
pub async fn closed_within<S: AsyncReadExt + Unpin>(s: &mut S, timeout: Duration) -> Option<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Waits (up to the deadline) for the core to close the connection; panics if
/// it stays open.
pub async fn expect_closed<S: AsyncReadExt + Unpin>(s: &mut S, what: &str) -> Vec<u8> {
    match closed_within(s, DEADLINE).await {
        Some(bytes) => bytes,
        None => panic!("{what}: the core kept the connection open for {DEADLINE:?}"),
    }
}

/// MQTT remaining-length encoding.
pub fn remaining_length(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return out;
        }
    }
}

/// A SUBSCRIBE written by hand (rumqttc refuses to send invalid filters).
pub fn subscribe_packet(pkid: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    for (f, q) in filters {
        body.extend_from_slice(&(f.len() as u16).to_be_bytes());
        body.extend_from_slice(f.as_bytes());
        body.push(*q);
    }
    let mut p = vec![0x82];
    p.extend(remaining_length(body.len()));
    p.extend(body);
    p
}

/// A PUBLISH written by hand from raw topic bytes.
pub fn publish_packet(topic: &[u8], qos: u8, pkid: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = (topic.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(topic);
    if qos > 0 {
        body.extend_from_slice(&pkid.to_be_bytes());
    }
    body.extend_from_slice(payload);
    let mut p = vec![0x30 | (qos << 1)];
    p.extend(remaining_length(body.len()));
    p.extend(body);
    p
}

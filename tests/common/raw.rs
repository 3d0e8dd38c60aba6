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

/// The length of the first complete MQTT packet in `buf` (fixed header
/// included), or `None` while it is incomplete. Panics on a remaining length
/// longer than four bytes (the core never sends one).
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    let mut remaining = 0usize;
    for i in 0..4 {
        let b = *buf.get(1 + i)?;
        remaining |= ((b & 0x7f) as usize) << (7 * i);
        if b & 0x80 == 0 {
            let total = 2 + i + remaining;
            return (buf.len() >= total).then_some(total);
        }
    }
    panic!("the core sent a remaining length longer than four bytes: {:02x?}", &buf[..buf.len().min(8)]);
}

/// A raw MQTT connection for byte-exact tests: bytes go out exactly as
/// given; what comes back is cut into packets by their fixed headers and
/// compared as bytes.
pub struct Conn {
    pub stream: Stream,
    buf: Vec<u8>,
    /// Set once the core closed the connection (EOF or reset).
    closed: bool,
}

impl Conn {
    /// TLS as `creds`; nothing sent yet.
    pub async fn open(port: u16, creds: &Creds) -> Conn {
        Conn { stream: tls(port, creds).await, buf: Vec::new(), closed: false }
    }

    /// Writes `bytes` (one write, flushed: one TLS record up to 16 KiB).
    /// Panics if the write fails; see [`Conn::try_send`].
    pub async fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self.try_send(bytes).await {
            panic!("writing {} bytes failed: {e}", bytes.len());
        }
    }

    /// Writes `bytes` and flushes; the write's result (the core may have
    /// closed the connection already).
    pub async fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Writes `bytes` one byte per TLS record, pausing `pause` between them,
    /// so that the core reads them in as many pieces as the network allows.
    pub async fn send_bytewise(&mut self, bytes: &[u8], pause: Duration) {
        for b in bytes {
            self.send(std::slice::from_ref(b)).await;
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Reads more bytes until `deadline`; false when the connection ended or
    /// the deadline passed.
    async fn fill(&mut self, deadline: tokio::time::Instant) -> bool {
        if self.closed {
            return false;
        }
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
            Err(_) => false,
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.closed = true;
                false
            }
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next whole packet the core sent, as bytes; `None` if the connection
    /// ends (or nothing whole arrives) within `timeout`.
    pub async fn next_within(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(n) = frame_len(&self.buf) {
                return Some(self.buf.drain(..n).collect());
            }
            if !self.fill(deadline).await {
                return None;
            }
        }
    }

    /// The next whole packet (within the deadline); panics naming `what` if
    /// none comes.
    pub async fn next(&mut self, what: &str) -> Vec<u8> {
        match self.next_within(DEADLINE).await {
            Some(p) => p,
            None if self.closed => panic!("{what}: the core closed the connection (unread bytes: {:02x?})", self.buf),
            None => panic!("{what}: nothing within {DEADLINE:?} (unread bytes: {:02x?})", self.buf),
        }
    }

    /// Asserts that the next packet is exactly `want`.
    pub async fn expect(&mut self, want: &[u8], what: &str) {
        let got = self.next(what).await;
        assert_eq!(got, want, "{what}: got {got:02x?}, expected {want:02x?}");
    }

    /// Waits (up to the deadline) for the core to close the connection;
    /// returns the bytes it sent before closing that were not read yet.
    pub async fn closed(&mut self, what: &str) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !self.closed {
            if !self.fill(deadline).await && !self.closed {
                panic!("{what}: the core kept the connection open for {DEADLINE:?} (it sent {:02x?})", self.buf);
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// Asserts that the core closes the connection without sending anything
    /// (more).
    pub async fn closed_silently(&mut self, what: &str) {
        let sent = self.closed(what).await;
        assert!(sent.is_empty(), "{what}: the core sent {sent:02x?} before closing, expected nothing");
    }

    /// Asserts that the connection is still open and nothing arrives for
    /// `quiet`: used after a barrier has shown that everything sent before it
    /// was delivered.
    pub async fn quiet_for(&mut self, quiet: Duration, what: &str) {
        if let Some(p) = self.next_within(quiet).await {
            panic!("{what}: unexpected packet {p:02x?}");
        }
        assert!(!self.closed, "{what}: the core closed the connection");
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }
}

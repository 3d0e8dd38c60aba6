//! A raw MQTT subscriber whose reading speed the test controls: slower than
//! the core (a small read and a pause, again and again), or not reading at
//! all. It acknowledges QoS 1 messages itself, so its PUBACKs come only as
//! fast as it reads.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{Connect, Packet, PubAck};
use rumqttc::mqttbytes::QoS;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio_rustls::TlsConnector;

use super::mqtt::{tls_config, HOST};
use super::process::Creds;
use super::raw::{subscribe_packet, Stream};
use super::DEADLINE;

/// How a [`SlowSubscriber`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Most bytes taken from the connection per read.
    pub chunk: usize,
    /// Pause after each read.
    pub pause: Duration,
}

impl Pace {
    /// About 1 MB/s: a few thousand small messages a second, slower than a
    /// publisher.
    pub const SLOW: Pace = Pace { chunk: 1024, pause: Duration::from_millis(1) };
    /// As fast as it can.
    pub const FAST: Pace = Pace { chunk: 64 * 1024, pause: Duration::ZERO };
}

pub struct SlowSubscriber {
    pub thing: String,
    stream: Stream,
    buf: BytesMut,
    /// Messages received, in order: (topic, payload).
    pub received: Vec<(String, Bytes)>,
    pub closed: bool,
}

impl SlowSubscriber {
    /// Connects as `creds` over TLS with a small receive buffer (so that the
    /// kernel does not absorb a whole burst), clean or persistent session.
    pub async fn connect(port: u16, creds: &Creds, clean_session: bool) -> Self {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
        let tcp = socket.connect(([127, 0, 0, 1], port).into()).await.expect("TCP connect");
        let name = ServerName::try_from(HOST).expect("server name");
        let config = tls_config(&creds.ca, &creds.cert, &creds.key);
        let mut stream = tokio::time::timeout(DEADLINE, TlsConnector::from(config).connect(name, tcp))
            .await
            .expect("TLS handshake in time")
            .expect("TLS handshake");
        let mut c = Connect::new(creds.thing.clone());
        c.keep_alive = 600;
        c.clean_session = clean_session;
        let mut b = BytesMut::new();
        c.write(&mut b).expect("encode CONNECT");
        stream.write_all(&b).await.expect("write CONNECT");
        let mut s = Self { thing: creds.thing.clone(), stream, buf: BytesMut::new(), received: Vec::new(), closed: false };
        match s.next_packet().await {
            Some(Packet::ConnAck(a)) => assert_eq!(a.code, rumqttc::mqttbytes::v4::ConnectReturnCode::Success, "{} refused", s.thing),
            other => panic!("{}: expected CONNACK, got {other:?}", s.thing),
        }
        s
    }

    async fn next_packet(&mut self) -> Option<Packet> {
        loop {
            match Packet::read(&mut self.buf, 1 << 20) {
                Ok(p) => return Some(p),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => panic!("{}: the core sent a packet that does not parse: {e}", self.thing),
            }
            self.buf.reserve(4096);
            match tokio::time::timeout(DEADLINE, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => {
                    self.closed = true;
                    return None;
                }
            }
        }
    }

    /// Subscribes to `filter` at `qos` (0 or 1) and checks it is granted.
    pub async fn subscribe(&mut self, filter: &str, qos: u8) {
        self.stream.write_all(&subscribe_packet(1, &[(filter, qos)])).await.expect("write SUBSCRIBE");
        loop {
            match self.next_packet().await {
                Some(Packet::SubAck(a)) => {
                    assert_eq!(a.return_codes.len(), 1);
                    assert!(
                        !matches!(a.return_codes[0], rumqttc::mqttbytes::v4::SubscribeReasonCode::Failure),
                        "{}: SUBSCRIBE {filter} refused",
                        self.thing
                    );
                    return;
                }
                Some(Packet::Publish(p)) => self.take(p).await,
                Some(_) => {}
                None => panic!("{}: closed before SUBACK", self.thing),
            }
        }
    }

    async fn take(&mut self, p: rumqttc::mqttbytes::v4::Publish) {
        if p.qos != QoS::AtMostOnce {
            let mut b = BytesMut::new();
            Packet::PubAck(PubAck::new(p.pkid)).write(&mut b, usize::MAX).expect("encode PUBACK");
            if self.stream.write_all(&b).await.is_err() {
                self.closed = true;
            }
        }
        self.received.push((p.topic.clone(), p.payload.clone()));
    }

    /// Reads at `pace` until `total` messages have been received in all,
    /// the connection closes, or nothing arrives for the deadline. Returns
    /// whether `total` was reached.
    pub async fn receive(&mut self, total: usize, pace: Pace) -> bool {
        let mut chunk = vec![0u8; pace.chunk];
        while self.received.len() < total {
            loop {
                match Packet::read(&mut self.buf, 1 << 20) {
                    Ok(Packet::Publish(p)) => self.take(p).await,
                    Ok(_) => {}
                    Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => break,
                    Err(e) => panic!("{}: the core sent a packet that does not parse: {e}", self.thing),
                }
            }
            if self.received.len() >= total {
                break;
            }
            match tokio::time::timeout(DEADLINE, self.stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => {
                    self.closed = true;
                    return false;
                }
            }
            if !pace.pause.is_zero() {
                tokio::time::sleep(pace.pause).await;
            }
        }
        true
    }

    /// Waits (reading nothing) until the core closes the connection, up to
    /// `timeout`; true when it did.
    pub async fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.closed = true;
                    return true;
                }
                Ok(Ok(_)) => {}
            }
        }
    }
}

//! The clients of the queue benchmarks: devices that publish QoS 1 and wait
//! for each PUBACK before the next PUBLISH (one packet per write, as a device
//! SDK with one message in flight does), and the observer that subscribes at
//! the upstream ("cloud") broker and counts, message by message, what arrived.
//!
//! Each payload starts with `publisher index (u32 LE) | sequence (u64 LE)`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use ggcore_benches::load::seqset::SeqSet;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Packet, PubAck, Publish, Subscribe};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

const MAX_PACKET: usize = 1 << 20;
pub const HEADER: usize = 12;

/// Where a broker is and how a device reaches it.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub roots: Arc<rustls::RootCertStore>,
    pub certs_dir: PathBuf,
}

impl Endpoint {
    pub fn new(addr: SocketAddr, ca: &Path, certs_dir: &Path) -> Result<Self> {
        Ok(Self { addr, roots: ggcore_benches::tls::roots(ca)?, certs_dir: certs_dir.to_path_buf() })
    }
}

/// TCP + TLS with `thing`'s certificate + CONNECT (client id `thing`).
pub async fn connect(ep: &Endpoint, thing: &str, clean: bool) -> Result<TlsStream<TcpStream>> {
    let config = ggcore_benches::tls::client_config(
        ep.roots.clone(),
        &ep.certs_dir.join(format!("{thing}.cert.pem")),
        &ep.certs_dir.join(format!("{thing}.private.key")),
    )?;
    let tcp = TcpStream::connect(ep.addr).await.with_context(|| format!("{thing}: connecting to {}", ep.addr))?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let mut tls = TlsConnector::from(config).connect(name, tcp).await.with_context(|| format!("{thing}: TLS handshake"))?;
    let mut c = Connect::new(thing);
    c.keep_alive = 600;
    c.clean_session = clean;
    let mut buf = BytesMut::new();
    Packet::Connect(c).write(&mut buf, MAX_PACKET)?;
    tls.write_all(&buf).await?;
    let mut rbuf = BytesMut::new();
    match read_packet(&mut tls, &mut rbuf).await? {
        Packet::ConnAck(a) if a.code == ConnectReturnCode::Success => Ok(tls),
        p => bail!("{thing}: expected an accepting CONNACK, got {p:?}"),
    }
}

async fn read_packet<S: AsyncRead + Unpin>(s: &mut S, buf: &mut BytesMut) -> Result<Packet> {
    loop {
        match Packet::read(buf, MAX_PACKET) {
            Ok(p) => return Ok(p),
            Err(CodecError::InsufficientBytes(_)) => {
                buf.reserve(64 * 1024);
                if s.read_buf(buf).await? == 0 {
                    bail!("connection closed by the broker");
                }
            }
            Err(e) => bail!("malformed packet: {e}"),
        }
    }
}

/// Counters shared by the publishers of a run.
#[derive(Default)]
pub struct PubShared {
    /// PUBACKs received by all publishers.
    pub acked: AtomicU64,
    pub stop: AtomicBool,
}

/// One publisher's outcome: messages `start..acked_upto` were acknowledged.
#[derive(Debug, Clone)]
pub struct PubOutcome {
    pub index: u32,
    pub acked_upto: u64,
    pub error: Option<String>,
}

/// Publishes `payload`-byte messages on `topic` at QoS 1, one at a time: the
/// next PUBLISH only after the PUBACK of the previous one. Starts at sequence
/// `start`, stops after `limit` messages, at `shared.stop`, or when the
/// connection fails (the outcome says how far it got).
pub async fn publish_one_at_a_time(ep: &Endpoint, index: u32, payload: usize, start: u64, limit: u64, shared: &PubShared) -> PubOutcome {
    let (thing, topic) = (crate::setup::q_name(index as usize), crate::setup::q_topic(index as usize));
    let (thing, topic) = (thing.as_str(), topic.as_str());
    let mut seq = start;
    let r: Result<()> = async {
        let mut s = connect(ep, thing, true).await?;
        let mut body = vec![b'x'; payload.max(HEADER)];
        let mut wbuf = BytesMut::with_capacity(payload + 256);
        let mut rbuf = BytesMut::with_capacity(4096);
        while seq < start.saturating_add(limit) && !shared.stop.load(Ordering::Relaxed) {
            body[0..4].copy_from_slice(&index.to_le_bytes());
            body[4..12].copy_from_slice(&seq.to_le_bytes());
            let mut p = Publish::new(topic, QoS::AtLeastOnce, Bytes::copy_from_slice(&body));
            p.pkid = (seq % 65535 + 1) as u16;
            wbuf.clear();
            p.write(&mut wbuf)?;
            s.write_all(&wbuf).await?;
            match read_packet(&mut s, &mut rbuf).await? {
                Packet::PubAck(a) if a.pkid == p.pkid => {}
                other => bail!("expected PUBACK {}, got {other:?}", p.pkid),
            }
            seq += 1;
            shared.acked.fetch_add(1, Ordering::Relaxed);
        }
        let mut wbuf = BytesMut::new();
        Packet::Disconnect.write(&mut wbuf, MAX_PACKET)?;
        let _ = s.write_all(&wbuf).await;
        let _ = s.shutdown().await;
        Ok(())
    }
    .await;
    PubOutcome { index, acked_upto: seq, error: r.err().map(|e| format!("{e:#}")) }
}

/// What the observer saw.
#[derive(Default)]
pub struct Observed {
    pub per_source: HashMap<u32, SeqSet>,
    pub distinct: u64,
    pub duplicates: u64,
    pub first: Option<Instant>,
    pub last: Option<Instant>,
}

impl Observed {
    /// Messages of `acked` (publisher index → sequences acknowledged) that never arrived.
    pub fn missing(&self, acked: &HashMap<u32, SeqSet>) -> u64 {
        let empty = SeqSet::new();
        acked.iter().map(|(i, s)| s.missing_from(self.per_source.get(i).unwrap_or(&empty))).sum()
    }
}

/// Subscribes to `filter` at QoS 1 as `thing` (a persistent session when
/// `clean` is false) and records every PUBLISH until `stop`.
pub async fn observe(
    ep: Endpoint,
    thing: String,
    filter: String,
    clean: bool,
    seen: Arc<Mutex<Observed>>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let mut s = connect(&ep, &thing, clean).await?;
    let mut buf = BytesMut::new();
    let mut sub = Subscribe::new(filter, QoS::AtLeastOnce);
    sub.pkid = 1;
    Packet::Subscribe(sub).write(&mut buf, MAX_PACKET)?;
    s.write_all(&buf).await?;
    let mut rbuf = BytesMut::with_capacity(256 * 1024);
    let mut acks = BytesMut::new();
    while !stop.load(Ordering::Relaxed) {
        rbuf.reserve(64 * 1024);
        let n = match tokio::time::timeout(Duration::from_millis(100), s.read_buf(&mut rbuf)).await {
            Err(_) => continue,
            Ok(r) => r?,
        };
        if n == 0 {
            bail!("the upstream broker closed the observer's connection");
        }
        let now = Instant::now();
        record_publishes(&mut rbuf, &mut acks, &seen, now)?;
        if !acks.is_empty() {
            s.write_all(&acks).await?;
            acks.clear();
        }
    }
    Ok(())
}

/// Takes the whole packets out of `rbuf`: PUBACKs for them into `acks`,
/// their sources and sequence numbers into `seen`.
fn record_publishes(rbuf: &mut BytesMut, acks: &mut BytesMut, seen: &Mutex<Observed>, now: Instant) -> Result<()> {
    let mut g = seen.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        match Packet::read(rbuf, MAX_PACKET) {
            Ok(Packet::Publish(p)) => {
                if p.qos != QoS::AtMostOnce {
                    PubAck::new(p.pkid).write(acks)?;
                }
                if p.payload.len() >= HEADER {
                    let i = u32::from_le_bytes(p.payload[0..4].try_into()?);
                    let seq = u64::from_le_bytes(p.payload[4..12].try_into()?);
                    if g.per_source.entry(i).or_default().insert(seq) {
                        g.distinct += 1;
                    } else {
                        g.duplicates += 1;
                    }
                    g.first.get_or_insert(now);
                    g.last = Some(now);
                }
            }
            Ok(_) => {}
            Err(CodecError::InsufficientBytes(_)) => return Ok(()),
            Err(e) => bail!("malformed packet from the upstream broker: {e}"),
        }
    }
}
